"""edgeml quantize MODEL --calib SPEC -o OUT"""

from __future__ import annotations

import click

from edgeml.cli._options import input_shape_option, print_config_option, print_config_requested
from edgeml.cli._options import print_config as show_config
from edgeml.cli._out import emit_json, status, table
from edgeml.options import CalibMethod, ConvertTo, QuantFallback, QuantIO, QuantizeOptions, QuantMode


@click.command("quantize")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), required=True, help="Output .tflite or .onnx file.")
@click.option("--calib", metavar="SPEC", help="Calibration data (needed for int8/int16x8), e.g. images/?samples=200.")
@click.option("--format", "fmt", type=click.Choice(ConvertTo.values()),
              help="Output format [default: the source's, or the target's first format for Keras/SavedModel].")
@click.option("--mode", type=click.Choice(QuantMode.values()), default="int8",
              show_default=True, help="int8: full-integer; int16x8: int16 activations; float16/dynamic: no "
                                      "calibration (weights only).")
@click.option("--io", type=click.Choice(QuantIO.values()),
              help="TFLite input/output type [default: the target's, int8 on most; ONNX keeps float32].")
@click.option("--per-channel/--per-tensor", default=True, show_default=True, help="Weight scales per channel.")
@click.option("--method", type=click.Choice([*CalibMethod.values(), "qat"]), default="minmax",
              show_default=True, help="Activation calibration (entropy/percentile: ONNX only); qat: "
                                      "quantization-aware fine-tuning of a Keras model (--train, --epochs).")
@click.option("--train", "train_spec", metavar="SPEC", help="--method qat: labelled training data.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="--method qat: epochs.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="--method qat: learning rate.")
@click.option("--calib-samples", type=click.IntRange(min=1), metavar="N",
              help="Calibration samples to draw [default: the spec's samples=, else 200].")
@click.option("--target", metavar="NAME|PROFILE.toml", help="Target whose recipe to use (edgeml targets lists "
                                                             "them) [default: host].")
@click.option("--eval", "eval_spec", metavar="SPEC", help="Labelled data: report float vs quantized top-1.")
@click.option("--report", type=click.Path(), help="Write the full per-layer report (.json, or .md for Markdown).")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True, help="Worst layers to print.")
@click.option("--force", is_flag=True, help="Overwrite OUT/--report if they exist.")
@click.option("--keep-degraded", is_flag=True, help="Write OUT even when the fidelity check fails (exit code "
                                                     "stays 1).")
@click.option("--max-accuracy-drop", type=float, metavar="D",
              help="Budget: largest top-1 drop vs float on labelled --eval data, as a fraction (0.01 = 1 point). "
                   "Worst layers fall back (float; int16 activations from a .tflite) until it holds.")
@click.option("--min-fidelity", type=float, metavar="C",
              help="Budget without labels: every output's cosine vs float (all samples' values as one vector) "
                   ">= C, on --eval data when given, else the first 64 calibration samples.")
@click.option("--fallback", type=click.Choice(QuantFallback.values()),
              help="What fallen-back layers become [default: float; int16x8 from a float .tflite, where AI Edge "
                   "Quantizer can mix precisions per op].")
@click.option("--keep-best", is_flag=True, help="When the budget cannot be met, write the best reached anyway "
                                                 "(exit code stays 1).")
@click.option("--speed-seconds", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Time float vs quantized interleaved on this host for at most this long (0: skip).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.quantize/1).")
@input_shape_option
@print_config_option
@click.pass_context
def quantize_cmd(ctx, model, out, calib, fmt, mode, io, per_channel, method, train_spec, epochs, lr, calib_samples,
                 target, eval_spec,
                 report, top, force, keep_degraded, max_accuracy_drop, min_fidelity, fallback, keep_best, speed_seconds,
                 as_json, input_shapes):
    """Quantize MODEL (.keras, .h5, SavedModel, float .tflite, .onnx) with calibration data.

    TFLite: the TFLite converter (Keras/SavedModel) or AI Edge Quantizer (a float .tflite); full-integer
    int8 by default, ops that cannot be int8 are listed and stay float unless the target (e.g. coral-usb)
    needs full int8. ONNX: ONNX Runtime static QDQ after pre-processing; activation/weight types follow
    the target's measured recipe. The float and quantized models are compared afterwards: output MSE,
    cosine, argmax agreement, and SQNR per layer (worst first). When that check says the quantized model
    is broken (an output's relative error > 0.5, cosine < 0.90, or argmax agreement < 80 %; or the
    output grew far beyond the source), quantize exits 1 and writes nothing unless --keep-degraded.

    With a budget (--max-accuracy-drop on labelled --eval data, or --min-fidelity), layers are ranked by
    per-layer SQNR, the worst few measured one by one, and the fewest that meet the budget fall back to
    float (int16 activations from a float .tflite); full-int8 targets (coral-*) allow no fallback. An
    unmeetable budget exits 1 and writes nothing unless --keep-best. Float and quantized are then timed
    side by side on this host (--speed-seconds).

    \b
    Examples:
      edgeml quantize model.keras --calib builtin:digits -o model_int8.tflite
      edgeml quantize model.onnx --calib images/?samples=200 -o model_int8.onnx --method percentile
      edgeml quantize model.keras --calib images/ --target coral-usb -o model_edgetpu_ready.tflite
      edgeml quantize model.onnx --calib train.npz --eval test.npz --max-accuracy-drop 0.01 -o model_int8.onnx
    """
    options = QuantizeOptions(out=out, calib=calib, format=fmt, mode=mode, io=io, per_channel=per_channel,
                              method=method, calib_samples=calib_samples, target=target, eval=eval_spec,
                              report=report, force=force, input_shapes=input_shapes, keep_degraded=keep_degraded,
                              max_accuracy_drop=max_accuracy_drop, min_fidelity=min_fidelity, keep_best=keep_best,
                              speed_seconds=speed_seconds, train=train_spec, epochs=epochs, lr=lr, fallback=fallback)
    if print_config_requested():
        return show_config("quantize", "edgeml.quantize", dict(model=model, **options.to_dict()))
    from edgeml.quantize import quantize

    quiet = ctx.obj.get("quiet") if ctx.obj else False
    r = quantize(model, options=options, progress=None if quiet else status)
    from edgeml.cli.flags import to_flags
    from edgeml.quantize import broken_error, budget_unmet_error, speed_advice, summary_lines

    if as_json:
        emit_json(r.to_dict())
        _fail_if_broken(budget_unmet_error(r) or broken_error(r))
        return

    click.echo(f"wrote {r.output}: {r.format} {r.mode}, io {r.io}, "
               f"{'per-channel' if r.per_channel else 'per-tensor'}, target {r.target} ({r.seconds:.1f} s)")
    for line in summary_lines(r):
        click.echo(to_flags(line))
    if target and str(target).startswith("coral") and str(r.output).endswith(".tflite"):
        from edgeml.errors import EdgeMLError
        from edgeml.targets.edgetpu_plan import plan

        try:  # what edgetpu_compiler is predicted to map (edgeml compile --plan for every op)
            click.echo(to_flags(plan(r.output, target=target).summary()))
        except EdgeMLError as exc:
            click.echo(f"Edge TPU plan: not available ({to_flags(exc.message)})")
    if r.layers and top:
        rows = [[_short(e.name), e.op, f"{e.sqnr_db:.1f}"] for e in r.layers[:top]]
        click.echo(f"\nworst layers (SQNR, higher is better; {len(r.layers)} compared"
                   f"{', full table in ' + str(report) if report else ', --report FILE for all'}):")
        click.echo(table(rows, ["tensor", "op", "SQNR dB"], "llr"))
    for note in r.notes:
        click.echo(f"note: {to_flags(note)}", err=True)
    for warning in r.warnings:
        click.echo(f"warning: {to_flags(warning)}", err=True)
    advice = speed_advice(r)
    if advice:
        click.echo(f"warning: {to_flags(advice)}", err=True)
    _fail_if_broken(budget_unmet_error(r) or broken_error(r))


def _fail_if_broken(error) -> None:
    if error is not None:
        raise error


def _short(name: str, width: int = 60) -> str:
    name = name.split(";")[0]
    return name if len(name) <= width else "..." + name[-(width - 3):]
