"""An int8 variant of the ONNX encoder for indexing: about twice the texts per second on a CPU.

Plain dynamic int8 quantisation of all-MiniLM-L6-v2 is fast but loses too much: a few input
channels of each layer carry values far larger than the rest, so one scale per activation tensor
leaves the ordinary channels a handful of levels, and sentence vectors drift to cosine ~0.98 of the
reference. This module first moves that spread from the activations into the weights (the
"smoothing" of SmoothQuant, Xiao et al. 2023): for each weight matrix ``W`` read by a layer input
``X``, a per-channel factor ``s`` turns ``X @ W`` into ``(X / s) @ (s * W)``, the same product
with evener activations. ``s_j = max|X_j| ** a / max|W_j| ** (1 - a)`` with ``a = ALPHA``; the
channel maxima ``max|X_j|`` come from running the float model over a fixed calibration set that is
part of this module (not the corpus, so the file does not depend on what is indexed). Then every
such MatMul is quantised dynamically, weights per output channel, except the one that the
measurements below found most sensitive (``FLOAT_NODES``), which stays in float.

The variant is made once from the cached float export and kept beside it. Before it is kept it
must agree with the float model to cosine ``MIN_COSINE`` or better on a separate fixed set of
texts (``VERIFY_TEXTS``); when it does not, or when it cannot be made, the index is encoded with
the float model instead. Questions are always encoded by the float model: this variant only
writes index vectors, which the tests hold to cosine 0.99 of sentence-transformers.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from assistant.embed.onnx_export import ExportUnavailable, ensure_onnx, made_once

VARIANT = "int8-smooth-2"  # bump when the recipe changes: the cached file is then made again
ALPHA = 0.65  # measured: 0.6-0.7 keep the worst cosine above 0.99; 0.5 and 0.8 do not
MIN_COSINE = 0.99
# Kept in float: the first layer's feed-forward down-projection. Leaving out one MatMul at a time
# (36 of them), this one alone lifted the worst cosine over ~1,000 check, corpus and eval texts
# from 0.988 to 0.993 in batches of 8 (from 0.994 to 0.996 alone), for about 5% of the speed-up.
FLOAT_NODES = ("/inner/encoder/layer.0/output/dense/MatMul",)
log = logging.getLogger("assistant")

# Calibration: what layer inputs look like. Sentences of the kinds an index holds (rehab advice,
# clinical explanations, chatty transcript lines, headings, lists), plus very short inputs, whose
# few tokens produce the widest activations. Written for this purpose; not taken from the corpus.
CALIBRATION_TEXTS = [
    "Load the tendon gradually and let the pain settle within a day before you progress.",
    "Isometric holds can ease pain in the short term without compressing the tendon.",
    "Sitting on hard chairs for long periods often makes the buttock pain worse.",
    "Hip flexion under load, such as deep squats or lunges, compresses the tendon against the bone.",
    "A physiotherapist will test your strength, your range of motion and what provokes the pain.",
    "Most people improve over three to six months with a structured exercise programme.",
    "If the pain is rated above five out of ten during exercise, reduce the load next session.",
    "Running uphill and sprinting put more strain on the hamstring tendon than easy flat running.",
    "Strength training two or three times a week builds muscle when the load is heavy enough.",
    "Eat enough protein across the day and sleep well, or the muscle will not grow.",
    "Before a race, taper your training so that you arrive fresh rather than tired.",
    "The tendon attaches to the ischial tuberosity, the bony point you sit on.",
    "Imaging is rarely needed unless the diagnosis is unclear or the injury was sudden.",
    "Injections may relieve pain for a while, but they do not replace a loading programme.",
    "Welcome back to the show, today we are answering three questions from our listeners.",
    "So, yeah, I think that's a really good question and it comes up a lot.",
    "Thanks for listening, and if you have a question, send it in through the website.",
    "Question one: can I keep playing football while my hamstring recovers?",
    "Answer: yes, as long as the symptoms stay settled the next morning.",
    "Key points: manage load, build strength, return to sport step by step.",
    "1. Bridge holds, 5 x 45 seconds. 2. Hamstring curls, 3 x 8. 3. Romanian deadlifts, 3 x 6.",
    "Week 1-2: walking 20 min daily; week 3-4: add intervals of 1 min jogging.",
    "Numbness in the groin or loss of bladder control needs urgent medical attention.",
    "A sudden pop with bruising down the back of the thigh may be a tendon rupture.",
    "Fever, a hot swollen leg or chest pain are not symptoms to treat with exercise.",
    "The study followed 60 runners for 12 weeks (p < 0.05) and reported less pain.",
    "Why does it hurt more in the morning and then ease off once I get moving?",
    "how long till i can run again??",
    "what exercises should I avoid",
    "hamstring",
    "pain",
    "PHT",
    "ok",
    "?",
    "",
    "Ça fait mal quand je m'assois longtemps.",
    "Die Sehne braucht Zeit, um sich an neue Belastungen anzupassen.",
    "The quick brown fox jumps over the lazy dog.",
    "Our clinic is open Monday to Friday, 8 am to 6 pm; call 555-0100 to book.",
    "Tendinopathy is a condition of the tendon marked by pain, reduced function and lower tolerance "
    "to load. It is not the same as a tear, and rest alone rarely resolves it: the tendon adapts to "
    "the loads it meets, so a graded programme that raises those loads over weeks is the mainstay of "
    "care, alongside changes to sitting, stretching and training habits that irritate it.",
    "I've been a runner for twenty years and this is the first injury that has stopped me completely. "
    "My physio gave me exercises but I'm not sure I'm doing them right, and some days they seem to "
    "make it worse. Should I push through, or stop when it hurts? And is it safe to cycle meanwhile?",
]

# Verification: a different set, held out from calibration, that the variant must match.
VERIFY_TEXTS = [
    "Can I keep running while I rehab my high hamstring tendon?",
    "what is PHT",
    "sit bone pain when driving",
    "x",
    "",
    "My leg is swollen and hot and I feel feverish.",
    "Progress the exercise when it feels easy for two sessions in a row.",
    "Heavy slow resistance training builds tendon stiffness over twelve weeks.",
    "Hey everyone, hope you're all doing well, let's get into today's questions.",
    "What is a good recipe for banana bread?",
    "Ça fait mal quand je cours — 痛い 🏃",
    "Load management means doing enough to stimulate adaptation without flaring the symptoms. "
    "Keep a simple diary of what you did and how the tendon felt the next morning, and use it to "
    "decide whether to progress, hold or reduce the load in the following week.",
]


def variant_path(model_dir: Path) -> Path:
    fp32 = ensure_onnx(model_dir)
    return fp32.with_name(f"{fp32.stem}-{VARIANT}.onnx")


def ensure_int8(model_dir: Path) -> Path:
    """The cached int8 variant for ``model_dir``, made (and verified) now if it is not there yet."""
    return made_once(variant_path(model_dir), lambda target: make_int8(model_dir, ensure_onnx(model_dir), target))


def _constant_matmuls(model: Any) -> list[Any]:
    weights = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def _activation_maxima(model_dir: Path, fp32: Path, inputs: list[str]) -> dict[str, Any]:
    """Per-channel max |x| of each named tensor over the calibration texts (one text per run)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model = onnx.load(str(fp32))
    for name in inputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.no_padding()
    maxima: dict[str, Any] = {}
    for text in CALIBRATION_TEXTS:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        outs = session.run(inputs, {k: v for k, v in feeds.items() if k in wanted})
        for name, out in zip(inputs, outs):
            m = np.abs(out).reshape(-1, out.shape[-1]).max(axis=0)
            maxima[name] = m if name not in maxima else np.maximum(maxima[name], m)
    return maxima


def smooth(model_dir: Path, fp32: Path, alpha: float = ALPHA) -> Any:
    """The float model with each constant MatMul's input spread moved into its weights."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    matmuls = _constant_matmuls(model)
    by_input: dict[str, list[Any]] = {}
    for node in matmuls:
        by_input.setdefault(node.input[0], []).append(node)
    maxima = _activation_maxima(model_dir, fp32, list(by_input))
    weights = {i.name: i for i in model.graph.initializer}
    scaled_inputs: dict[str, str] = {}
    new_nodes, inserted = [], set()
    for x_name, readers in by_input.items():
        # One factor per input tensor, shared by every MatMul reading it (query, key and value).
        mats = [numpy_helper.to_array(weights[n.input[1]]) for n in readers]
        w_max = np.max([np.abs(w).max(axis=1) for w in mats], axis=0)
        s = maxima[x_name] ** alpha / np.clip(w_max, 1e-5, None) ** (1 - alpha)
        s = np.clip(s, 1e-3, 1e3).astype(np.float32)
        for node, w in zip(readers, mats):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1]))
        inv = numpy_helper.from_array((1.0 / s).astype(np.float32), f"{x_name}/smooth_inv")
        model.graph.initializer.append(inv)
        scaled_inputs[x_name] = f"{x_name}/smoothed"
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[0] in scaled_inputs and node.input[1] in weights:
            x_name = node.input[0]
            if x_name not in inserted:
                inserted.add(x_name)
                new_nodes.append(
                    onnx.helper.make_node("Mul", [x_name, f"{x_name}/smooth_inv"], [scaled_inputs[x_name]], name=f"{x_name}/smooth")
                )
            node.input[0] = scaled_inputs[x_name]
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return model


def agreement(model_dir: Path, fp32: Path, candidate: Path, texts: list[str]) -> float:
    """The lowest cosine between the two models' vectors for ``texts`` (each text alone)."""
    from assistant.embed.onnx_export import OnnxEncoder

    ref = OnnxEncoder(model_dir, fp32, threads=1, workers=1).encode(texts, batch_size=1)
    got = OnnxEncoder(model_dir, candidate, threads=1, workers=1).encode(texts, batch_size=1)
    return float((ref * got).sum(axis=1).min())


def make_int8(model_dir: Path, fp32: Path, target: Path, alpha: float | None = ALPHA) -> Path:
    """Smooth, quantise, verify against the float model, then move into place (atomically).

    ``alpha=None`` quantises without smoothing (how the check catches a variant that drifts).
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExportUnavailable(f"cannot quantise here ({exc})") from None
    quiet = logging.getLogger()
    level = quiet.level
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8-") as tmp:
        smoothed = Path(tmp) / "smoothed.onnx"
        quantized = Path(tmp) / "int8.onnx"
        onnx.save(smooth(model_dir, fp32, alpha) if alpha is not None else onnx.load(str(fp32)), str(smoothed))
        quiet.setLevel(logging.ERROR)  # the quantiser suggests a pre-processing step, at WARNING
        try:
            quantize_dynamic(
                str(smoothed),
                str(quantized),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=list(FLOAT_NODES),
            )
        finally:
            quiet.setLevel(level)
        worst = agreement(model_dir, fp32, quantized, VERIFY_TEXTS + CALIBRATION_TEXTS)
        if worst < MIN_COSINE:
            raise ExportUnavailable(f"the int8 encoder agrees with the float one only to cosine {worst:.4f}")
        os.chmod(quantized, 0o644)
        target.with_suffix(".json").write_text(
            json.dumps({"variant": VARIANT, "alpha": alpha, "min_cosine_to_float": round(worst, 5)}) + "\n"
        )
        os.replace(quantized, target)
    log.info("made the int8 index encoder %s (cosine to float >= %.4f)", target.name, worst)
    return target
