"""Recomputes `keraslike visualize`'s Grad-CAM and saliency in PyTorch, from the model's
`model.safetensors` export and the input saved in `explanation.json`, and prints how far
apart they are.

    keraslike visualize --model run/model.bpk --image digit.png --out vis
    python3 tests/python/check_grad_cam.py run/model.safetensors vis/explanation.json

The PyTorch side is the usual recipe (as pytorch-grad-cam computes it): a forward hook on
the last Conv2d's activation keeps A, the class score before the softmax is backpropagated,
the channel weights are the spatial means of dA, the map is ReLU(sum w_k A_k), upsampled
with F.interpolate(bilinear, align_corners=False) and scaled min-max onto [0, 1].
"""

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from safetensors import safe_open

from check_export import torch_model


def main():
    weights, explanation = sys.argv[1:3]
    with open(explanation) as f:
        e = json.load(f)
    with safe_open(weights, framework="numpy") as f:
        meta = f.metadata()
    arch, classes = json.loads(meta["architecture"]), json.loads(meta["classes"])
    model = torch_model(arch, weights)
    x = torch.tensor(np.array(e["input"], dtype=np.float32))[None].requires_grad_(True)
    # The last Conv2d and its activation module, if one follows it.
    last = max(i for i, m in enumerate(arch) if m["type"] == "Conv2d")
    if last + 1 < len(arch) and arch[last + 1]["type"] in ("ReLU", "LeakyReLU", "Tanh", "Sigmoid"):
        last += 1
    kept = {}
    model[last].register_forward_hook(lambda _m, _i, out: kept.__setitem__("A", out))
    body = model[:-1] if arch[-1]["type"] == "Softmax" else model
    logits = body(x)
    c = classes.index(e["class"])
    if logits.shape[1] == 1:  # a binary head before its sigmoid: z for class 1, -z for 0
        body = model[:-1]
        logits = body(x)
        score = logits[0, 0] if c == 1 else -logits[0, 0]
    else:
        score = logits[0, c]
    A = kept["A"]
    dA, dx = torch.autograd.grad(score, [A, x])
    cam = F.relu((dA.mean(dim=(2, 3), keepdim=True) * A).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam.detach().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min()) if cam.max() > cam.min() else cam * 0
    sal = dx.abs().amax(dim=1)[0].numpy()
    sal = sal / sal.max()
    ours_cam, ours_sal = np.array(e["grad_cam"]), np.array(e["saliency"])
    worst = max(np.abs(cam - ours_cam).max(), np.abs(sal - ours_sal).max())
    verdict = "OK" if worst <= 1e-4 else "FAIL"
    print(
        f"{explanation}: class {e['class']}: Grad-CAM largest difference {np.abs(cam - ours_cam).max():.2e}, "
        f"saliency {np.abs(sal - ours_sal).max():.2e}: {verdict}"
    )
    sys.exit(0 if verdict == "OK" else 1)


if __name__ == "__main__":
    main()
