#!/usr/bin/env python3
"""edgeml device runner: measures models on the machine it runs on and prints one JSON document.

Self-contained on purpose: stdlib + numpy + the machine's own runtime (LiteRT / tflite_runtime /
tf.lite, the Edge TPU delegate, ONNX Runtime). edgeml copies this file to a board with the models and
data; nothing of edgeml needs installing there. The same file runs locally for the host, so local and
remote numbers come from the same code.

    python3 device_runner.py JOB_DIR      # JOB_DIR/job.json (+ models, data.npz): measure
    python3 device_runner.py --doctor     # what this machine has

Progress goes to stderr; the result (or {"error", "hint"}, exit 3) to stdout.
"""

import glob
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

# The protocol with the host (edgeml/targets/protocol.py, which cannot be imported here: no edgeml on a board).
# tests/targets/test_protocol.py asserts that these copies agree with it.
JOB_FILE = "job.json"
DEFAULT_DATA = "data.npz"
DATA_LAYOUT_FULL = "full"
INPUT_KEY = "in%d"
LABELS_KEY = "labels"
DOCTOR = "--doctor"
ERROR_EXIT = 3

EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


class RunnerError(Exception):
    def __init__(self, message, hint=""):
        super().__init__(message)
        self.message, self.hint = message, hint


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def _np():
    try:
        import numpy
    except ImportError:
        raise RunnerError("numpy is not installed on this machine", "pip3 install numpy")
    return numpy


# -- environment -----------------------------------------------------------------------------------------
def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _version(dist):
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return None


def environment():
    cpu = None
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware")):
            cpu = line.split(":", 1)[1].strip()
            break
    if cpu is None and platform.system() == "Darwin":
        try:
            cpu = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5).stdout.strip()
        except Exception:
            pass
    model = _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        t = _read(zone + "/temp")
        if t and t.lstrip("-").isdigit():
            temps[_read(zone + "/type") or os.path.basename(zone)] = int(t) / 1000.0
    throttled = None
    if shutil.which("vcgencmd"):
        try:
            throttled = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True,
                                       timeout=5).stdout.strip().split("=")[-1] or None
        except Exception:
            pass
    return {
        "hostname": platform.node(), "board": model.replace("\x00", "") if model else None, "cpu": cpu,
        "cores": os.cpu_count(), "arch": platform.machine(), "os": platform.platform(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_mhz": int(freq) / 1000.0 if freq and freq.isdigit() else None,
        "temperatures_c": temps, "throttled": throttled, "python": platform.python_version(),
        "numpy": _version("numpy"), "onnxruntime_imported": _imported_version("onnxruntime"),
        "runtimes": {k: _version(k) for k in
                                                  ("ai-edge-litert", "tflite-runtime", "tensorflow", "onnxruntime",
                                                   "onnxruntime-gpu")},
        "emulated": emulated(text, platform.machine()),
    }


def emulated(cpuinfo, arch):
    """Set when this Python runs under user-mode emulation (qemu-user): its latency is not the board's.
    EDGEML_EMULATED names the emulator; else an ARM Python reading an x86 /proc/cpuinfo is one."""
    named = os.environ.get("EDGEML_EMULATED")
    if named:
        return named
    if arch.startswith(("aarch64", "arm")) and any(
            line.startswith("flags") and (" sse2" in line or " avx" in line) for line in cpuinfo.splitlines()):
        return "user-mode emulation (an %s Python on an x86 CPU)" % arch
    return None


_PROVIDER_LIBRARIES = {"TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
                       "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so"}


def provider_problem(ort, name):
    """Why an ONNX Runtime provider that the wheel lists as available cannot load here (None when it can).

    onnxruntime-gpu lists TensorRT and CUDA whenever their bridge libraries ship in the wheel, even when the
    libraries they need (TensorRT's libnvinfer, cuDNN) are missing; a session then quietly falls back to the
    next provider. Loading the bridge library names the missing dependency."""
    lib = _PROVIDER_LIBRARIES.get(name)
    if lib is None or platform.system() != "Linux":
        return None
    path = os.path.join(os.path.dirname(ort.__file__), "capi", lib)
    if not os.path.exists(path):
        return None
    import ctypes

    try:
        ctypes.CDLL(path)
    except OSError as exc:
        return " ".join(str(exc).split())
    return None


def _imported_version(module):
    """The version of the module this run imported (two ORT wheels can be installed side by side); None when
    it was not imported (never imported here: that would add to the measured process)."""
    mod = sys.modules.get(module)
    return getattr(mod, "__version__", None) if mod is not None else None


def doctor():
    env = environment()
    found = {}
    for mod in ("numpy", "ai_edge_litert", "tflite_runtime", "tensorflow", "onnxruntime"):
        found[mod] = importlib.util.find_spec(mod) is not None
    providers = []
    if found["onnxruntime"]:
        try:
            import onnxruntime

            env["onnxruntime_imported"] = getattr(onnxruntime, "__version__", None)
            providers = onnxruntime.get_available_providers()
            problems = {p: provider_problem(onnxruntime, p) for p in providers}
            providers = [p if not problems.get(p) else "%s (listed, but cannot load: %s)" % (p, problems[p])
                         for p in providers]
        except Exception as exc:
            providers = ["error: %s" % exc]
    import ctypes.util

    lib = EDGETPU_LIBRARIES.get(platform.system(), "libedgetpu.so.1")
    edgetpu = ctypes.util.find_library("edgetpu") or next(
        (p for p in ("/usr/lib/aarch64-linux-gnu/" + lib, "/usr/lib/x86_64-linux-gnu/" + lib, "/usr/lib/" + lib,
                     "/usr/local/lib/" + lib, "/opt/homebrew/lib/" + lib) if os.path.exists(p)), None)
    trtexec = shutil.which("trtexec") or next((p for p in ("/usr/src/tensorrt/bin/trtexec",) if os.path.exists(p)),
                                              None)
    return {"schema": "edgeml.doctor/1", "environment": env, "modules": found, "onnxruntime_providers": providers,
            "libedgetpu": edgetpu, "edgetpu_compiler": shutil.which("edgetpu_compiler"), "trtexec": trtexec,
            "edgetpu_devices": sorted(glob.glob("/dev/apex_*"))}


def rss_mib():
    text = _read("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return None


def peak_rss_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if platform.system() == "Darwin" else peak / 1024.0


# -- runtimes --------------------------------------------------------------------------------------------
def litert():
    errors = []
    for mod, name in (("ai_edge_litert.interpreter", "ai_edge_litert"), ("tflite_runtime.interpreter",
                                                                          "tflite_runtime")):
        try:
            m = __import__(mod, fromlist=["Interpreter"])
            return m.Interpreter, m.load_delegate, name
        except ImportError as exc:
            errors.append(str(exc))
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.load_delegate, "tensorflow.lite"
    except ImportError:
        pass
    raise RunnerError("no TFLite runtime on this machine (tried ai_edge_litert, tflite_runtime, tensorflow.lite)",
                      "pip3 install ai-edge-litert   (older boards: pip3 install tflite-runtime)")


class TFLiteModel:
    def __init__(self, spec):
        np = _np()
        cls, load_delegate, self.runtime = litert()
        kwargs = {"model_path": spec["path"]}
        if spec.get("threads"):
            kwargs["num_threads"] = int(spec["threads"])
        self.delegate = None
        if spec.get("delegate"):
            name = spec["delegate"]
            lib = EDGETPU_LIBRARIES.get(platform.system(), "libedgetpu.so.1") if name == "edgetpu" else name
            try:
                kwargs["experimental_delegates"] = [load_delegate(lib)]
            except (ValueError, OSError) as exc:
                raise RunnerError("cannot load the %s delegate (%s): %s" % (name, lib, exc),
                                  "install the Edge TPU runtime (libedgetpu1-std from Coral's apt repository) and "
                                  "plug in the accelerator" if name == "edgetpu" else "check the delegate path")
            self.delegate = name
        try:
            self.it = cls(**kwargs)
            # dynamic inputs (shape signature -1) are allocated once set() has resized them: a delegate may
            # refuse to prepare the graph at the placeholder size 1
            self.allocated = not any(-1 in list(d.get("shape_signature", []))[1:] for d in self.it.get_input_details())
            if self.allocated:
                self.it.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise RunnerError("%s: the TFLite runtime refuses this model: %s" % (spec["name"], exc),
                              "an Edge TPU-compiled model needs the edgetpu delegate (--target coral-usb)"
                              if "edgetpu-custom-op" in str(exc) else "re-convert the model")
        try:
            self.inputs = self.it.get_input_details()
            self.outputs = self.it.get_output_details()
        except UnicodeDecodeError:
            raise RunnerError("%s: a tensor name is not valid UTF-8; the TFLite runtime cannot read the model's IO"
                              % spec["name"], "rename the model's input/output tensors and re-export it")
        self.np = np

    def set(self, arrays):
        np = self.np
        resized = False
        for d, x in zip(self.inputs, arrays):
            shape = list(np.shape(x))
            if shape != [int(v) for v in d["shape"]]:  # dynamic dims: the data decides the shape
                self.it.resize_tensor_input(d["index"], shape, strict=False)
                resized = True
        if resized or not self.allocated:
            try:
                self.it.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise RunnerError("the TFLite runtime cannot prepare the model at input shapes %s: %s"
                                  % ([list(np.shape(x)) for x in arrays], " ".join(str(exc).split())),
                                  "check the input shapes (--input-shape) fit the model")
            self.allocated = True
            self.inputs = self.it.get_input_details()
            self.outputs = self.it.get_output_details()
        for d, x in zip(self.inputs, arrays):
            self.it.set_tensor(d["index"], _to_dtype(np, x, np.dtype(d["dtype"]).name, d.get("quantization")))

    def invoke(self):
        self.it.invoke()

    def get(self):
        np = self.np
        out = []
        for d in self.outputs:
            y = self.it.get_tensor(d["index"])
            scale, zp = d.get("quantization") or (0.0, 0)
            if y.dtype.kind in "iu" and scale:
                y = (y.astype(np.float32) - zp) * scale
            out.append(y)
        return out

    def input_shapes(self):
        return [([int(x) for x in d["shape"]], self.np.dtype(d["dtype"]).name, d.get("quantization"))
                for d in self.inputs]


class OrtModel:
    def __init__(self, spec):
        np = _np()
        try:
            import onnxruntime as ort
        except ImportError:
            raise RunnerError("ONNX Runtime is not installed on this machine",
                              "pip3 install onnxruntime   (Jetson: NVIDIA's onnxruntime-gpu wheel for JetPack)")
        self.runtime = "onnxruntime"
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if spec.get("threads"):
            opts.intra_op_num_threads = int(spec["threads"])
        available = ort.get_available_providers()
        wanted = spec.get("providers") or ["CPUExecutionProvider"]
        self.provider_problems = {p: provider_problem(ort, p) for p in wanted if p in available}
        self.provider_problems = {p: why for p, why in self.provider_problems.items() if why}
        providers = [p for p in wanted if p in available and p not in self.provider_problems] or \
            ["CPUExecutionProvider"]
        options = []
        for p in providers:
            if p == "TensorrtExecutionProvider":
                cache = spec.get("trt_cache") or os.path.join(os.path.dirname(spec["path"]), "trt_cache")
                os.makedirs(cache, exist_ok=True)
                options.append({"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
                                "trt_fp16_enable": "True" if spec.get("trt_fp16", True) else "False",
                                "trt_int8_enable": "True" if spec.get("trt_int8") else "False"})
            else:
                options.append({})
        try:
            self.sess = ort.InferenceSession(spec["path"], opts, providers=providers, provider_options=options)
        except Exception as exc:
            raise RunnerError("%s: ONNX Runtime refuses this model: %s" % (spec["name"], " ".join(str(exc).split())),
                              "check the model loads with onnxruntime on this machine")
        self.providers = self.sess.get_providers()
        # what was asked for and is not running: not installed, not loadable, or refused by the session
        self.missing_providers = [p for p in wanted if p not in self.providers]
        try:
            self.inputs = self.sess.get_inputs()
            self.names = [o.name for o in self.inputs]
            [o.name for o in self.sess.get_outputs()]
        except UnicodeDecodeError:
            raise RunnerError("%s: a tensor name is not valid UTF-8; ONNX Runtime cannot feed or fetch it"
                              % spec["name"], "rename the model's input/output tensors and re-export it")
        self.np = np
        self.feed = {}

    def set(self, arrays):
        np = self.np
        types = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
                 "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(bool)": "bool"}
        self.feed = {i.name: _to_dtype(np, x, types.get(i.type, "float32"), None) for i, x in zip(self.inputs, arrays)}

    def invoke(self):
        self.last = self.sess.run(None, self.feed)

    def get(self):
        return list(self.last)

    def input_shapes(self):
        types = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32",
                 "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(float16)": "float16"}
        return [([d if isinstance(d, int) else 1 for d in i.shape], types.get(i.type, "float32"), None)
                for i in self.inputs]


def _to_dtype(np, x, dtype, quant):
    """The data rule of edgeml.calibration.domain (auto): data already in the input's dtype passes through;
    float data is quantized with the input's scale/zero point; uint8 <-> int8 shifts by 128; other integers
    must fit the input's range."""
    x = np.asarray(x)
    if x.dtype.name == dtype:
        return x
    if dtype not in _QRANGE:
        return x.astype(dtype)
    lo, hi = _QRANGE[dtype]
    scale, zp = quant or (0.0, 0)
    if x.dtype.kind == "f":
        if scale:
            return np.clip(np.round(x / scale + zp), lo, hi).astype(dtype)
        return np.clip(np.round(x), lo, hi).astype(dtype)
    if scale and set((x.dtype.name, dtype)) == set(("uint8", "int8")):
        return (x.astype(np.int16) + (-128 if dtype == "int8" else 128)).astype(dtype)
    if x.size and (x.min() < lo or x.max() > hi):
        raise RunnerError("%s data (values %s..%s) does not fit the model's %s input" % (x.dtype, x.min(), x.max(),
                                                                                      dtype),
                          "store the data as %s, or as float real values" % dtype)
    return x.astype(dtype)


# -- statistics ------------------------------------------------------------------------------------------
def percentile(sorted_ms, q):
    if not sorted_ms:
        return None
    k = (len(sorted_ms) - 1) * q / 100.0
    f, c = math.floor(k), math.ceil(k)
    return sorted_ms[f] + (sorted_ms[c] - sorted_ms[f]) * (k - f)


def stats(ms):
    s = sorted(ms)
    n = len(s)
    mean = sum(s) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / (n - 1)) if n > 1 else 0.0
    # distribution-free 95% confidence interval of the median: order statistics n/2 -+ 1.96 sqrt(n)/2
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - half)) - 1), min(n - 1, int(math.ceil(n / 2 + half)))
    return {"n": n, "min": s[0], "mean": mean, "std": std, "p50": percentile(s, 50), "p90": percentile(s, 90),
            "p99": percentile(s, 99), "max": s[-1], "median_ci95": [s[lo], s[hi]],
            "throughput_per_s": 1000.0 / mean if mean > 0 else None}


# -- measurement -----------------------------------------------------------------------------------------
def memory_ceiling(job):
    """Bytes the job's tensors may take: the job's own limit, else a quarter of this machine's free memory."""
    if job.get("max_memory_bytes"):
        return int(job["max_memory_bytes"])
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 // 4
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 2 * 1024 ** 3


def check_shapes(np, name, shapes, limit):
    """Refuse inputs whose declared shapes would not fit, before allocating them."""
    for k, (shape, dtype, _) in enumerate(shapes):
        n = np.dtype(dtype).itemsize
        for d in [1] + list(shape[1:]):
            n *= d if isinstance(d, int) and d > 0 else 1
        if n > limit:
            raise RunnerError("%s: input %d %s (%s) would need %.1f GiB, over this machine's memory ceiling of "
                              "%.1f GiB" % (name, k, list(shape), dtype, n / 2 ** 30, limit / 2 ** 30),
                              "check the model's declared input shape (or raise EDGEML_MAX_MEMORY)")


def _synthetic(np, shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = []
    for shape, dtype, quant in shapes:
        shape = [1] + [d if isinstance(d, int) and d > 0 else 1 for d in shape[1:]]
        if dtype.startswith("float") or quant:
            arrays.append(rng.random(shape, dtype=np.float32))
        else:
            arrays.append(rng.integers(0, 10, shape).astype(dtype))
    return arrays


def _row(arr, j, full):
    """Sample j of a data array: ``full`` arrays stack whole model inputs (any batch axis, scalars),
    the others stack samples without their leading batch axis."""
    return arr[j] if full else arr[j:j + 1]


def measure(job_dir):
    np = _np()
    with open(os.path.join(job_dir, JOB_FILE)) as f:
        job = json.load(f)
    files = {}

    def data_for(spec):  # each model has its own data file (bound to its inputs); else a shared data.npz
        name = spec.get("data") or DEFAULT_DATA
        if name not in files:
            path = os.path.join(job_dir, name)
            files[name] = np.load(path, allow_pickle=False) if os.path.exists(path) else None
        return files[name]

    full = job.get("data_layout") == DATA_LAYOUT_FULL  # generated data stacks whole inputs (any batch axis)
    models, result_models, datas = [], [], []
    for spec in job["models"]:
        spec = dict(spec, path=os.path.join(job_dir, spec["file"]))
        say("loading %s" % spec["name"])
        data = data_for(spec)
        before = rss_mib()
        t0 = time.perf_counter()
        m = (TFLiteModel if spec["format"] == "tflite" else OrtModel)(spec)
        load_ms = (time.perf_counter() - t0) * 1000
        if spec.get("feed"):  # inputs generated by edgeml at the model's resolved shapes
            feed = np.load(os.path.join(job_dir, spec["feed"]), allow_pickle=False)
            first = [feed[INPUT_KEY % i] for i in range(len(m.inputs))]
        elif data is not None:
            first = [_row(data[INPUT_KEY % i], 0, full) for i in range(len(m.inputs))]
        else:
            check_shapes(np, spec["name"], m.input_shapes(), memory_ceiling(job))
            first = _synthetic(np, m.input_shapes())
        m.set(first)
        t0 = time.perf_counter()
        m.invoke()
        first_ms = (time.perf_counter() - t0) * 1000
        entry = {"name": spec["name"], "format": spec["format"], "runtime": m.runtime, "threads": spec.get("threads"),
                 "cold_start": {"load_ms": load_ms, "first_inference_ms": first_ms},
                 "rss_after_load_mib": (rss_mib() - before) if before is not None else None,
                 "timed": spec.get("time", True)}
        if isinstance(m, OrtModel):
            entry["providers"] = m.providers
            entry["missing_providers"] = m.missing_providers
            if m.provider_problems:
                entry["provider_problems"] = m.provider_problems
            if "TensorrtExecutionProvider" in m.providers:
                entry["cold_start"]["engine_build_ms"] = first_ms  # first run builds (or loads) the engine
        if isinstance(m, TFLiteModel):
            entry["delegate"] = m.delegate
        models.append((m, first))
        datas.append(data)
        result_models.append(entry)
    timed = [i for i, e in enumerate(result_models) if e["timed"]]
    warmup, runs, min_time = int(job.get("warmup", 5)), int(job.get("runs", 50)), float(job.get("min_time", 0))
    for i in timed:
        models[i][0].set(models[i][1])
    say("warm-up (%d runs each)" % warmup)
    for _ in range(warmup):
        for i in timed:
            models[i][0].invoke()
    times = {i: [] for i in timed}
    say("timing %d model(s) interleaved: %d runs%s" % (len(timed), runs,
                                                         ", at least %.1f s" % min_time if min_time else ""))
    start = time.perf_counter()
    rounds = 0
    perf = time.perf_counter
    while rounds < runs or (perf() - start) < min_time:
        for i in timed:
            invoke = models[i][0].invoke
            t0 = perf()
            invoke()
            times[i].append((perf() - t0) * 1000)
        rounds += 1
        if rounds % max(1, runs // 4) == 0:
            say("  %d runs" % rounds)
        if rounds >= 100000:
            break
    for i in timed:
        result_models[i]["latency_ms"] = stats(times[i])
    outputs = {}
    ref = job.get("reference")
    # outputs on the data serve accuracy (labels) and the reference comparison; unlabelled data without a
    # reference only fixed the input shapes and the timed feed: no pass over it
    wanted = [d is not None and (LABELS_KEY in d.files or ref is not None) for d in datas]
    if any(wanted):
        say("running the data samples through each model")
        for k, (m, _) in enumerate(models):
            data = datas[k]
            if not wanted[k]:
                continue
            outs = []
            for j in range(int(data["in0"].shape[0])):
                m.set([_row(data[INPUT_KEY % i], j, full) for i in range(len(m.inputs))])
                m.invoke()
                outs.append([np.asarray(o, np.float64) for o in m.get()])
            outputs[k] = outs
        for k, entry in enumerate(result_models):
            if k not in outputs:
                continue
            labels = datas[k][LABELS_KEY] if LABELS_KEY in datas[k].files else None
            if labels is not None and outputs[k]:
                entry["accuracy"] = _accuracy(np, outputs[k], labels)
            if ref is not None and k != ref and ref in outputs:
                entry["fidelity"] = _fidelity(np, outputs[ref], outputs[k])
    return {"schema": "edgeml.device_run/1", "environment": environment(), "peak_rss_mib": peak_rss_mib(),
            "models": result_models, "warmup": warmup, "runs": rounds, "min_time_s": min_time}


def classes(shapes):
    """(C, None) for a classifier: one output of one score per class, [1, C] or [C]; else (None, why)."""
    if len(shapes) != 1:
        return None, ("the model has %d outputs; top-1 needs one class-score output [1, C] (a detector or "
                      "multi-head model)" % len(shapes))
    core = list(shapes[0])
    while len(core) > 1 and core[0] in (1, None):
        core.pop(0)
    if len(core) != 1:
        return None, ("the output is shaped [%s], not one score per class [1, C] (a detector, segmenter or "
                      "embedding)" % ", ".join("?" if d is None else str(d) for d in shapes[0]))
    if core[0] is not None and core[0] < 2:
        return None, "the output is a single score; top-1 needs one score per class (C >= 2)"
    return core[0], None


def _accuracy(np, outs, labels):
    n_classes, why = classes([o.shape for o in outs[0]])
    if why:
        return {"not_applicable": why}
    scores = np.concatenate([o[0].reshape(1, -1) for o in outs])
    labels = np.asarray(labels).astype(np.int64).ravel()
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        return {"error": "label %d (sample %d) is outside the model's %d classes (0..%d); labels span %d..%d" % (
            labels[bad.argmax()], int(bad.argmax()), n_classes, n_classes - 1, labels.min(), labels.max())}
    top1 = float((scores.argmax(1) == labels).mean())
    out = {"samples": int(len(labels)), "top1": top1}
    if scores.shape[1] > 5:
        best5 = np.argsort(-scores, axis=1)[:, :5]
        out["top5"] = float((best5 == labels[:, None]).any(1).mean())
    return out


def _fidelity(np, ref, test):
    a = np.concatenate([np.concatenate([o.ravel() for o in s]) for s in ref])
    b = np.concatenate([np.concatenate([o.ravel() for o in s]) for s in test])
    if a.shape != b.shape:
        return {"error": "outputs differ in size (%d vs %d values)" % (a.size, b.size)}
    d = np.abs(a - b)
    ra = np.stack([s[0].reshape(-1) for s in ref])
    rb = np.stack([s[0].reshape(-1) for s in test])
    agree = float((ra.argmax(1) == rb.argmax(1)).mean()) if ra.shape[1] > 1 else None
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
    return {"max_abs_error": float(d.max()), "mean_abs_error": float(d.mean()), "cosine": cos,
            "argmax_agreement": agree, "samples": len(ref)}


def main(argv):
    try:
        if argv[:1] == [DOCTOR]:
            result = doctor()
        elif len(argv) == 1:
            result = measure(argv[0])
        else:
            raise RunnerError("usage: device_runner.py JOB_DIR | --doctor")
    except RunnerError as exc:
        print(json.dumps({"error": exc.message, "hint": exc.hint}))
        return ERROR_EXIT
    except MemoryError:
        print(json.dumps({"error": "the device runner ran out of memory",
                          "hint": "the model or data is too large for this machine's free memory"}))
        return ERROR_EXIT
    except Exception as exc:  # summarised in one line; the traceback travels in the JSON (shown with -v)
        import traceback

        text = " ".join(str(exc).split())[:300]
        print(json.dumps({"error": "the device runner failed: %s%s" % (type(exc).__name__, ": " + text if text else ""),
                          "hint": "run with -v to see the runner's traceback",
                          "traceback": traceback.format_exc()}))
        return ERROR_EXIT
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
