"""``squeezenet predict``: the top classes of images, with probabilities."""
from __future__ import annotations

from ._common import add_parser, number, print_json
from ._infer import ENGINES_HELP

EXAMPLES = """  squeezenet predict squeezenet1_1.safetensors ../shared/fixtures/photos/chelsea.png \\
      --labels ../shared/fixtures/imagenet/synset_words.txt
  squeezenet predict runs/c10/best.safetensors cat.jpg dog.jpg --top 3 --json
"""


def register(sub) -> None:
    p = add_parser(sub, "predict", "top-5 classes of images with probabilities", EXAMPLES)
    p.add_argument("weights", help="model file (anything squeezenet.load reads)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--labels", default=None,
                   help="labels file: one per line in model index order, or 'ID name' lines (synset_words.txt)")
    p.add_argument("--preprocess", default=None, help="caffe | torchvision | small (default: the model's)")
    p.add_argument("--top", type=number(int, 1), default=5, help="how many classes per image (default 5)")
    p.add_argument("--engine", default="auto", help=ENGINES_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def label_names(model, labels_path) -> list[str] | None:
    """A display name per output index, from --labels and the model's class ids."""
    from ..data import read_labels
    from ..errors import SqueezeNetError
    classes = getattr(model, "classes", None)
    n = getattr(model, "num_classes", None)
    if not labels_path:
        return list(classes) if classes else None
    lines = read_labels(labels_path)
    by_id = {}
    for l in lines:
        parts = l.split(None, 1)
        by_id[parts[0]] = l
    if classes and all(c in by_id for c in classes):
        return [by_id[c] for c in classes]
    if n is None or len(lines) == n:
        return lines
    raise SqueezeNetError(f"{labels_path}: {len(lines)} labels, but the model has {n} outputs "
                          f"and its class ids are not in the file")


def run(args) -> int:
    import torch

    from ..data import check_model_input, check_preset, get_transform, preset_for, read_image
    from ..errors import SqueezeNetError
    from ..io import load
    from ._infer import forward_for

    if args.top < 1:
        raise SqueezeNetError(f"--top {args.top}: must be >= 1")
    model = load(args.weights)
    preset = check_preset(args.preprocess) if args.preprocess else preset_for(model)
    check_model_input(model, preset, args.weights)
    names = label_names(model, args.labels)
    tf = get_transform(preset, train=False)
    batch = [tf(read_image(path)) for path in args.images]
    x = torch.stack(batch)
    fwd = forward_for(model, args.engine) or model
    with torch.inference_mode():
        probs = torch.softmax(torch.as_tensor(fwd(x)).float(), dim=1)
    k = min(args.top, probs.shape[1])
    results = []
    for path, p in zip(args.images, probs):
        top = p.topk(k)
        rows = [{"index": int(i), "probability": float(v),
                 "class": (model.classes[int(i)] if getattr(model, "classes", None) else str(int(i))),
                 "label": (names[int(i)] if names and int(i) < len(names) else str(int(i)))}
                for v, i in zip(top.values, top.indices)]
        results.append({"image": str(path), "top": rows})
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(r["image"])
            for row in r["top"]:
                print(f"  {row['probability']:.4f}  {row['label']}")
    return 0
