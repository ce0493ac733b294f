"""One data spec for every stage: sources, preprocessing, sampling, validation, adapters."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from edgeml.calibration import DataSpec, load_dataset
from edgeml.cli import cli
from edgeml.errors import DataError
from edgeml.formats.common import Quantization, TensorSpec

NHWC = [TensorSpec("image", (None, 8, 8, 1), "float32")]
NCHW = [TensorSpec("image", (None, 1, 8, 8), "float32")]
RGB32 = [TensorSpec("img", (None, 32, 32, 3), "float32")]
TWO_INPUTS = [TensorSpec("a", (None, 4), "float32"), TensorSpec("b", (None, 2, 3), "float32")]


def write_images(folder, n, *, size=(12, 10), mode="RGB", seed=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"img{i:03d}.png")


# --- sources -----------------------------------------------------------------------------------------

def test_npz_keyed_by_input_names_with_labels(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, a=np.ones((6, 4)), b=np.zeros((6, 2, 3)), y=np.arange(6))
    ds = load_dataset(str(p), inputs=TWO_INPUTS)
    s = ds.sample(2)
    assert set(s.feeds) == {"a", "b"} and s.feeds["a"].dtype == np.float32 and s.feeds["b"].shape == (2, 3)
    assert s.label == 2 and ds.labels.tolist() == list(range(6))


def test_npz_single_array_for_single_input_model(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, whatever=np.random.default_rng(0).random((5, 8, 8, 1)))
    ds = load_dataset(str(p), inputs=NHWC)
    assert len(ds) == 5 and ds.sample(0).feeds["image"].shape == (8, 8, 1) and not ds.has_labels


def test_npy_single_input_streams_with_mmap(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.random.default_rng(0).random((7, 8, 8, 1)).astype(np.float32))
    ds = load_dataset(str(p), inputs=NHWC)
    assert isinstance(ds.source.array, np.memmap) and len(ds) == 7


def test_csv_features_with_label_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("f1,f2,f3,f4,label\n1,2,3,4,0\n5,6,7,8,1\n9,10,11,12,1\n")
    ds = load_dataset(str(p), inputs=[TensorSpec("x", (None, 4), "float32")])
    assert ds.sample(1).feeds["x"].tolist() == [5, 6, 7, 8] and ds.labels.tolist() == [0, 1, 1]


def test_image_folder_flat_is_unlabelled_and_resized(tmp_path):
    write_images(tmp_path / "imgs", 4)
    ds = load_dataset(str(tmp_path / "imgs"), inputs=RGB32)
    x = ds.sample(0).feeds["img"]
    assert x.shape == (32, 32, 3) and 0 <= x.min() and x.max() <= 1 and not ds.has_labels


def test_image_folder_class_subfolders_sorted_names(tmp_path):
    write_images(tmp_path / "d" / "cat", 2)
    write_images(tmp_path / "d" / "ant", 3)
    ds = load_dataset(str(tmp_path / "d"), inputs=RGB32)
    assert sorted(ds.labels.tolist()) == [0, 0, 0, 1, 1]  # ant=0, cat=1
    assert ds.describe()["label_distribution"] == {"ant": 3, "cat": 2}


def test_labels_txt_maps_folder_names_to_indices_imagenet_style(tmp_path):
    write_images(tmp_path / "d" / "goldfish", 2)
    write_images(tmp_path / "d" / "tench", 1)
    (tmp_path / "d" / "labels.txt").write_text("background\ntench\ngoldfish\n")
    ds = load_dataset(str(tmp_path / "d"), inputs=RGB32)
    assert sorted(ds.labels.tolist()) == [1, 2, 2]


def test_builtin_digits_splits_are_disjoint_and_fixed():
    train = load_dataset("builtin:digits?split=train", validate=False)
    test = load_dataset("builtin:digits?split=test", validate=False)
    assert len(train) == 1437 and len(test) == 360
    a = {train.source.images[i].tobytes() for i in range(len(train))}
    assert sum(test.source.images[i].tobytes() in a for i in range(50)) < 5  # digits has a few duplicates


def test_digits_resized_and_replicated_to_rgb_with_imagenet_norm():
    ds = load_dataset(DataSpec.parse("builtin:digits", samples=2, norm="imagenet"), inputs=RGB32)
    x = ds.sample(0).feeds["img"]
    assert x.shape == (32, 32, 3)
    assert np.allclose((0 - 0.485) / 0.229, x[..., 0].min(), atol=1e-5)  # black pixel, imagenet-normalised


def test_layout_nchw_taken_from_model():
    ds = load_dataset("builtin:digits?samples=3", inputs=NCHW)
    assert ds.sample(0).feeds["image"].shape == (1, 8, 8)


def test_int8_model_input_receives_data_quantized_with_model_scale():
    spec = [TensorSpec("image", (None, 8, 8, 1), "int8", Quantization(1 / 255, -128))]
    ds = load_dataset("builtin:digits?samples=5", inputs=spec)
    float_ds = load_dataset("builtin:digits?samples=5", inputs=NHWC)
    q, f = ds.sample(0).feeds["image"], float_ds.sample(0).feeds["image"]
    assert q.dtype == np.int8
    assert np.array_equal(q, np.clip(np.round(f * 255 - 128), -128, 127).astype(np.int8))


def test_raw_pixels_for_uint8_image_models():
    spec = [TensorSpec("image", (None, 8, 8, 1), "uint8", Quantization(0.0078125, 128))]
    ds = load_dataset("builtin:digits?samples=3&raw_pixels=true", inputs=spec)
    x = ds.sample(0).feeds["image"]
    assert x.dtype == np.uint8 and x.max() > 200  # 0..255 pixels, not quantized 0..1 values


# --- sampling ------------------------------------------------------------------------------------------

def test_same_seed_same_samples_other_seed_other_samples():
    pick = [load_dataset(f"builtin:digits?samples=20&seed={s}", validate=False).indices.tolist() for s in (1, 1, 2)]
    assert pick[0] == pick[1] != pick[2]


def test_stratified_sampling_keeps_class_proportions():
    ds = load_dataset("builtin:digits?samples=100&sampling=stratified", validate=False)
    counts = np.bincount(ds.labels, minlength=10)
    assert counts.sum() == 100 and counts.min() >= 9 and counts.max() <= 11


def test_large_folder_is_listed_not_loaded(tmp_path):
    write_images(tmp_path / "many", 300, size=(4, 4))
    ds = load_dataset(DataSpec.parse(str(tmp_path / "many"), samples=10), inputs=RGB32)
    assert len(ds) == 10 and not hasattr(ds.source, "images")


# --- adapters --------------------------------------------------------------------------------------------

def test_representative_dataset_yields_float32_batches_of_one():
    ds = load_dataset("builtin:digits?samples=4", inputs=NHWC)
    items = list(ds.representative_dataset()())
    assert len(items) == 4 and items[0][0].shape == (1, 8, 8, 1) and items[0][0].dtype == np.float32
    assert list(ds.representative_dataset(as_dict=True)())[0]["image"].shape == (1, 8, 8, 1)


def test_calibration_reader_for_onnxruntime_rewinds():
    ds = load_dataset("builtin:digits?samples=3", inputs=NCHW)
    reader = ds.calibration_reader()
    got = [reader.get_next() for _ in range(4)]
    assert got[3] is None and got[0]["image"].shape == (1, 1, 8, 8)
    reader.rewind()
    assert np.array_equal(reader.get_next()["image"], got[0]["image"])


def test_batches_stack_feeds_and_labels():
    ds = load_dataset("builtin:digits?samples=10", inputs=NHWC)
    batches = list(ds.batches(4))
    assert [b[0]["image"].shape[0] for b in batches] == [4, 4, 2]
    assert np.array_equal(np.concatenate([b[1] for b in batches]), ds.labels)


def test_same_spec_serves_keras_tflite_and_onnx(tiny_keras, tiny_tflite, tiny_onnx):
    from edgeml.artifact import inspect_model

    shapes = [load_dataset("builtin:digits?samples=2", inputs=inspect_model(p).inputs).sample(0).feeds["image"].shape
              for p in (tiny_keras, tiny_tflite, tiny_onnx)]
    assert shapes == [(8, 8, 1), (8, 8, 1), (1, 8, 8)]


# --- bad input -------------------------------------------------------------------------------------------

def raises(match: str, spec, inputs=None):
    with pytest.raises(DataError, match=match):
        load_dataset(spec, inputs=inputs)


def test_missing_input_name(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones((3, 4)), c=np.ones((3, 2, 3)))
    raises("no array for model input 'b'", str(tmp_path / "d.npz"), TWO_INPUTS)


def test_extra_input_name(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones((3, 4)), b=np.ones((3, 2, 3)), c=np.ones((3, 1)))
    raises("'c' that is not a model input", str(tmp_path / "d.npz"), TWO_INPUTS)


def test_wrong_shape_names_input_and_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 8, 8)))
    raises(r"input 'image' expects per-sample shape \[8, 8, 1\].*got \[8, 8\]", str(tmp_path / "d.npz"), NHWC)


def test_dynamic_dims_accept_any_size(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 5, 7, 1)))
    ds = load_dataset(str(tmp_path / "d.npz"), inputs=[TensorSpec("x", (None, None, None, 1), "float32")])
    assert ds.sample(0).feeds["x"].shape == (5, 7, 1)


def test_string_dtype_cannot_be_converted(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([["a"] * 4] * 3))
    raises("cannot be converted to numbers", str(tmp_path / "d.npz"), [TensorSpec("x", (None, 4), "float32")])


def test_object_arrays_refused_no_pickle(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    raises("pickle", str(tmp_path / "o.npy"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_rejected_with_sample_location(tmp_path, bad):
    x = np.ones((5, 4), np.float32)
    x[3, 1] = bad
    np.savez(tmp_path / "d.npz", x=x)
    raises(r"d\.npz\[3\]: input 'x' contains NaN or Inf", str(tmp_path / "d.npz"),
           [TensorSpec("x", (None, 4), "float32")])


def test_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    raises("empty", str(tmp_path / "empty"), RGB32)


def test_unreadable_image_is_named(tmp_path):
    write_images(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    raises("broken.png: unreadable image", str(tmp_path / "imgs"), RGB32)


def test_labels_count_must_match_samples(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((5, 4)), y=np.arange(4))
    raises("4 labels .* for 5 samples", str(tmp_path / "d.npz"))


def test_few_calibration_samples_warn_with_number(caplog):
    ds = load_dataset("builtin:digits?samples=10", inputs=NHWC)
    with caplog.at_level(logging.WARNING, logger="edgeml"):
        assert ds.warn_if_few()
    assert "only 10 calibration samples" in caplog.text


@pytest.mark.parametrize("spec,match", [
    ("builtin:digits?bogus=1", "unknown option 'bogus'"),
    ("builtin:digits?split=validation", "split must be one of"),
    ("builtin:digits?samples=0", "samples must be >= 1"),
    ("builtin:digits?norm=weird", "unknown norm"),
    ("builtin:nope", "unknown builtin dataset"),
    ("/does/not/exist.npz", "data not found"),
])
def test_bad_specs(spec, match):
    raises(match, spec)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    raises("unsupported data file type", str(tmp_path / "d.parquet"))


def test_stratified_needs_labels(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((10, 4)))
    raises("stratified needs labelled data", f"{tmp_path / 'd.npz'}?samples=3&sampling=stratified")


def test_toml_data_spec_with_relative_source(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((10, 4)), y=np.arange(10))
    (tmp_path / "calib.toml").write_text('[data]\nsource = "d.npz"\nsamples = 4\nseed = 3\n')
    ds = load_dataset(str(tmp_path / "calib.toml"), inputs=[TensorSpec("x", (None, 4), "float32")])
    assert len(ds) == 4 and ds.spec.seed == 3


def test_toml_data_spec_with_unknown_key(tmp_path):
    (tmp_path / "bad.toml").write_text('[data]\nsource = "builtin:digits"\nsamplez = 4\n')
    raises("unknown option 'samplez'", str(tmp_path / "bad.toml"))


# --- CLI ---------------------------------------------------------------------------------------------------

def test_data_inspect_with_model_shows_what_is_fed(tiny_onnx):
    result = CliRunner().invoke(cli, ["data", "inspect", "builtin:digits", "--model", str(tiny_onnx),
                                      "--samples", "30", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["count"] == 30 and d["inputs"][0]["shape"] == [1, 8, 8] and d["inputs"][0]["max"] <= 1.0
    assert sum(d["label_distribution"].values()) == 30


def test_data_inspect_bad_data_is_one_clean_error(tmp_path, tiny_onnx):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 5)))
    result = CliRunner().invoke(cli, ["data", "inspect", str(tmp_path / "d.npz"), "--model", str(tiny_onnx)])
    assert result.exit_code == 3 and "Traceback" not in result.output
    assert result.output.startswith("error: ") and "expects per-sample shape [1, 8, 8]" in result.output


# --- how values reach a quantized input (issue 24: never quantize integer data twice) ---------------------

I8 = TensorSpec("x", (None, 4), "int8", Quantization(0.5, 10))
U8_IMG = [TensorSpec("image", (None, 8, 8, 1), "uint8", Quantization(1 / 128, 128))]
I8_IMG = [TensorSpec("image", (None, 8, 8, 1), "int8", Quantization(1 / 255, -128))]


def _fed(ds):
    return {t["name"]: t["fed"] for t in ds.describe()["inputs"]}


def test_int8_data_for_int8_input_passes_through_unchanged(tmp_path):
    x = np.arange(-40, 40, dtype=np.int8).reshape(20, 4)
    np.savez(tmp_path / "d.npz", x=x)
    ds = load_dataset(str(tmp_path / "d.npz"), inputs=[I8])
    assert np.array_equal(ds.arrays()[0]["x"], x)
    assert _fed(ds)["x"]["path"] == "as-is" and not _fed(ds)["x"]["notes"]


def test_float_data_for_int8_input_is_quantized_with_model_scale(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((3, 4), 1.26, np.float32))
    ds = load_dataset(str(tmp_path / "d.npz"), inputs=[I8])
    assert ds.sample(0).feeds["x"].tolist() == [13] * 4  # round(1.26 / 0.5 + 10)
    fed = _fed(ds)["x"]
    assert fed["path"] == "quantize" and "scale 0.5, zero point 10" in fed["how"] and not fed["notes"]


def test_float_whole_numbers_in_int8_range_are_flagged_ambiguous(tmp_path, caplog):
    np.savez(tmp_path / "d.npz", x=np.full((3, 4), 40.0, np.float32))
    with caplog.at_level(logging.WARNING, logger="edgeml"):
        ds = load_dataset(str(tmp_path / "d.npz"), inputs=[I8])
    assert "only whole numbers" in caplog.text and "domain=quantized" in caplog.text
    assert ds.sample(0).feeds["x"].tolist() == [90] * 4 and _fed(ds)["x"]["notes"]
    ds = load_dataset(f"{tmp_path / 'd.npz'}?domain=quantized", inputs=[I8])  # the user decides
    assert ds.sample(0).feeds["x"].tolist() == [40] * 4 and _fed(ds)["x"]["path"] == "integers"


def test_uint8_data_for_int8_input_is_shifted_and_noted(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.asarray([[0, 128, 200, 255]] * 2, np.uint8))
    ds = load_dataset(str(tmp_path / "d.npz"), inputs=[I8])
    assert ds.sample(0).feeds["x"].tolist() == [-128, 0, 72, 127]
    fed = _fed(ds)["x"]
    assert fed["path"] == "shift" and "domain=real" in fed["notes"][0]
    real = load_dataset(f"{tmp_path / 'd.npz'}?domain=real", inputs=[I8]).sample(0).feeds["x"]
    assert real.tolist() == [10, 127, 127, 127]  # values as real numbers: round(v / 0.5 + 10), clipped


def test_wide_integers_outside_the_int8_range_are_an_error(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.asarray([[0, 1, 2, 300]] * 2, np.int64))
    with pytest.raises(DataError, match=r"d.npz\[0\].*values 0..300 do not fit .*-128..127") as e:
        load_dataset(str(tmp_path / "d.npz"), inputs=[I8])
    assert "domain=real" in e.value.hint
    np.savez(tmp_path / "ok.npz", x=np.asarray([[0, 1, 2, 3]] * 2, np.int64))
    ds = load_dataset(str(tmp_path / "ok.npz"), inputs=[I8])
    assert ds.sample(0).feeds["x"].tolist() == [0, 1, 2, 3] and _fed(ds)["x"]["path"] == "integers"


def test_images_for_uint8_input_scaled_1_128_zp_128_are_raw_pixels_by_default():
    spec = "builtin:digits?samples=4&sampling=first"
    pixels = load_dataset(spec, inputs=[TensorSpec("image", (None, 8, 8, 1), "float32")]
                          ).sample(0).feeds["image"] * 255
    x = load_dataset(spec, inputs=U8_IMG).sample(0).feeds["image"]
    assert x.dtype == np.uint8 and np.array_equal(x, np.round(pixels).astype(np.uint8))  # not 128..255
    assert _fed(load_dataset(spec, inputs=U8_IMG))["image"]["path"] == "pixels"
    # an explicit normalisation is honoured and quantized with the model's scale: [0, 1] lands at 128..255
    x = load_dataset(spec + "&norm=0..1", inputs=U8_IMG).sample(0).feeds["image"]
    assert x.min() >= 128


def test_images_for_int8_input_are_pixels_minus_128():
    spec = "builtin:digits?samples=4&sampling=first"
    u8 = load_dataset(spec, inputs=U8_IMG).sample(0).feeds["image"].astype(np.int16)
    for extra in ("", "&raw_pixels=true"):
        i8 = load_dataset(spec + extra, inputs=I8_IMG).sample(0).feeds["image"]
        assert i8.dtype == np.int8 and np.array_equal(i8, u8 - 128)


def test_raw_pixels_for_a_float_model_are_0_to_255():
    x = load_dataset("builtin:digits?samples=3&raw_pixels=true", inputs=NHWC).sample(0).feeds["image"]
    assert x.dtype == np.float32 and x.max() > 200


def test_real_valued_view_dequantizes_exactly(tmp_path):
    from edgeml.bench.accuracy import float_inputs
    from edgeml.runtimes.session import quantize

    x = np.arange(-40, 40, dtype=np.int8).reshape(20, 4)
    np.savez(tmp_path / "d.npz", x=x)
    real = load_dataset(str(tmp_path / "d.npz"), inputs=float_inputs([I8])).arrays()[0]["x"]
    assert real.dtype == np.float32 and np.allclose(real, (x.astype(np.float32) - 10) * 0.5)
    assert np.array_equal(quantize(real, "int8", I8.quantization), x)  # a session gets the same integers back


def test_int_data_for_float_input_is_noted(tmp_path, caplog):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 4), np.int8))
    with caplog.at_level(logging.WARNING, logger="edgeml"):
        ds = load_dataset(str(tmp_path / "d.npz"), inputs=[TensorSpec("x", (None, 4), "float32")])
    assert ds.sample(0).feeds["x"].dtype == np.float32
    assert "no scale to dequantize" in caplog.text


def test_calibration_adapters_keep_int8_data_as_is(tmp_path):
    x = np.arange(-40, 40, dtype=np.int8).reshape(20, 4)
    np.savez(tmp_path / "d.npz", x=x)
    ds = load_dataset(str(tmp_path / "d.npz"), inputs=[I8])
    first = next(iter(ds.representative_dataset()()))[0]
    assert first.dtype == np.int8 and np.array_equal(first[0], x[ds.indices[0]])
    assert np.array_equal(ds.calibration_reader().get_next()["x"][0], x[ds.indices[0]])


def test_plus_in_a_data_spec_path_is_kept(tmp_path):
    folder = tmp_path / "c++ data"
    folder.mkdir()
    np.savez(folder / "a+b.npz", x=np.ones((6, 4)), y=np.arange(6))
    (folder / "labels+1.txt").write_text("cat\n")
    spec = DataSpec.parse(f"{folder / 'a+b.npz'}?samples=2&labels_file={folder / 'labels+1.txt'}")
    assert spec.source == str(folder / "a+b.npz") and spec.labels_file == str(folder / "labels+1.txt")
    assert len(load_dataset(f"{folder / 'a+b.npz'}?samples=2", inputs=[TensorSpec("x", (None, 4), "float32")])) == 2


def test_bad_domain_is_refused():
    raises("domain must be one of", "builtin:digits?domain=ints")


def test_data_inspect_states_the_path_each_input_took(tmp_path, monkeypatch):
    import types

    import edgeml.artifact

    np.savez(tmp_path / "d.npz", x=np.arange(-40, 40, dtype=np.int8).reshape(20, 4), y=np.arange(20) % 3)
    monkeypatch.setattr(edgeml.artifact, "inspect_model", lambda path: types.SimpleNamespace(inputs=[I8]))
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "inspect", str(tmp_path / "d.npz"), "--model", "m.tflite", "--json"])
    assert res.exit_code == 0, res.output
    fed = json.loads(res.stdout)["inputs"][0]["fed"]
    assert fed["path"] == "as-is" and fed["model_dtype"] == "int8" and fed["quantization"]["zero_point"] == 10
    text = runner.invoke(cli, ["data", "inspect", str(tmp_path / "d.npz"), "--model", "m.tflite"]).stdout
    assert "fed as     x: passed through: int8 data is already in the model's int8 domain" in text


def test_csv_whole_numbers_for_an_int8_input_are_flagged(tmp_path, caplog):
    (tmp_path / "d.csv").write_text("a,b,c,d,label\n" + "1,2,3,4,0\n" * 3)
    with caplog.at_level(logging.WARNING, logger="edgeml"):
        ds = load_dataset(str(tmp_path / "d.csv"), inputs=[I8])
    assert "only whole numbers" in caplog.text and ds.sample(0).feeds["x"].tolist() == [12, 14, 16, 18]


def test_images_for_an_unquantized_uint8_input_are_raw_pixels():
    x = load_dataset("builtin:digits?samples=3", inputs=[TensorSpec("image", (None, 8, 8, 1), "uint8")])
    assert x.sample(0).feeds["image"].max() > 200  # not 0..1 rounded to 0/1


def test_images_for_an_int16_input_are_normalised_then_quantized():
    spec = [TensorSpec("image", (None, 8, 8, 1), "int16", Quantization(1 / 32767, 0))]
    x = load_dataset("builtin:digits?samples=3&sampling=first", inputs=spec).sample(0).feeds["image"]
    f = load_dataset("builtin:digits?samples=3&sampling=first", inputs=NHWC).sample(0).feeds["image"]
    assert x.dtype == np.int16 and np.array_equal(x, np.round(f * 32767).astype(np.int16))


def test_one_hot_labels_are_described_and_stratified_as_classes(tmp_path):
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=np.ones((30, 4)), y=np.eye(3)[y])
    ds = load_dataset(f"{tmp_path / 'd.npz'}?samples=9&sampling=stratified", inputs=[TensorSpec("x", (None, 4),
                                                                                             "float32")])
    assert ds.describe()["label_distribution"] == {"0": 3, "1": 3, "2": 3}
