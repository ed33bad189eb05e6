#!/usr/bin/env python3
"""Check the whole-model ONNX (models/hybrid-full.onnx) with onnxruntime.

    python3 tests/interop/check_onnx.py MODEL.onnx ANSWERS.jsonl

ANSWERS.jsonl is what `edge-runtime --json classify` printed for lossless PNG test images
(tract runs the encoder, `shared` the circuit and head): one JSON object per line with
"file", "class" and "probabilities". Pillow decodes each PNG to exactly the runtime's pixels;
onnxruntime runs the one graph on them (gray / 255, [N,1,64,64]); every class must be the
same and every probability within 1e-5. Exits 1 on any difference, a missing file or no
answers.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

CLASSES = ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"]
TOLERANCE = 1e-5


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        fail("usage: check_onnx.py MODEL.onnx ANSWERS.jsonl")
    model, answers_path = Path(sys.argv[1]), Path(sys.argv[2])
    answers = [json.loads(line) for line in answers_path.read_text().splitlines() if line.strip()]
    if not answers:
        fail(f"no answers in {answers_path}")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != ["image"] or outputs != ["logits", "probabilities"]:
        fail(f"graph signature {inputs} -> {outputs}, expected ['image'] -> ['logits', 'probabilities']")

    pixels = []
    for answer in answers:
        image = Image.open(answer["file"])
        if image.mode != "L" or image.size != (64, 64):
            fail(f"{answer['file']}: {image.mode} {image.size}, expected 64x64 gray")
        pixels.append(np.asarray(image, dtype=np.float32) / 255.0)
    batch = np.stack(pixels)[:, None, :, :]
    logits, probabilities = session.run(None, {"image": batch})

    want = np.array([[a["probabilities"][c] for c in CLASSES] for a in answers])
    worst = float(np.abs(probabilities - want).max())
    classes = [CLASSES[i] for i in probabilities.argmax(axis=1)]
    wrong = [a["file"] for a, c in zip(answers, classes) if a["class"] != c]
    if wrong:
        fail(f"{len(wrong)} images classified differently, first {wrong[0]}")
    if not np.isfinite(logits).all():
        fail("logits are not finite")
    if worst > TOLERANCE:
        fail(f"probabilities differ from edge-runtime by {worst:.2e} (limit {TOLERANCE:g})")
    print(
        f"OK: onnxruntime {ort.__version__} runs {model.name} on {len(answers)} images: same classes, "
        f"largest probability difference from edge-runtime {worst:.1e} (limit {TOLERANCE:g})"
    )


if __name__ == "__main__":
    main()
