"""``squeezenet predict``: the top classes of images, with probabilities."""
from __future__ import annotations

from ._common import add_parser, hide_aliases, number, print_json
from ._infer import ENGINES_HELP

EXAMPLES = """  squeezenet predict ../shared/fixtures/photos/chelsea.png       # the bundled ImageNet SqueezeNet v1.1
  squeezenet predict squeezenet1_0.deep_compression cat.jpg       # pretrained weights by name (list --pretrained)
  squeezenet predict squeezenet1_1.safetensors ../shared/fixtures/photos/chelsea.png
  squeezenet predict squeezenet1_1.safetensors photos/*.jpg \\
      --classes ../shared/fixtures/imagenet/synset_words.txt
  squeezenet predict runs/c10/best.safetensors cat.jpg dog.jpg --top 3 --json
  squeezenet predict m-int8.onnx ../shared/fixtures/photos/chelsea.png     # ONNX Runtime

Without a model (the first argument is an image), the bundled pretrained SqueezeNet v1.1
(squeezenet1_1.onnx_zoo) runs: no download, no flags. Class names come from the model file (import --classes synset_words.txt keeps them) or
--classes. Unreadable images are skipped with a warning each; the exit status is 2 only
when no image could be read.
"""


def register(sub) -> None:
    p = add_parser(sub, "predict", "top-5 classes of images with probabilities", EXAMPLES)
    p.add_argument("weights", metavar="[MODEL]",
                   help="model file (anything squeezenet.load reads), pretrained weights name or an exported "
                        ".onnx, OpenVINO .xml, ncnn .param or LiteRT .tflite; left out (the first argument is an image): the bundled " + DEFAULT_WEIGHTS)
    p.add_argument("images", nargs="*", help="image files")
    hide_aliases(p.add_argument("--classes", "--labels", dest="classes", default=None, metavar="FILE",
                                help="class list file, 'ID name' lines (synset_words.txt) or names: the names "
                                     "of the model's class ids where they are all in the file, else the model's "
                                     "classes in output order (for a model or .onnx file without a class list)"),
                 "--labels")
    p.add_argument("--preprocess", default=None, metavar="PRESET",
                   help="caffe | torchvision | small: for a file that stores none (default: the model's own)")
    p.add_argument("--force-preprocess", action="store_true",
                   help="run --preprocess even where it contradicts the preset stored in the model file "
                        "(refused otherwise: the figures would be wrong)")
    p.add_argument("--top", type=number(int, 1), default=5, help="how many classes per image (default 5)")
    p.add_argument("--engine", default="auto", help=ENGINES_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run, trailing="images")   # images after options too: M --top 3 a.jpg


#: the model ``predict`` runs when none is given
DEFAULT_WEIGHTS = "squeezenet1_1.onnx_zoo"


def split_model_and_images(first: str, rest: list[str]) -> tuple[str, list[str]]:
    """(model, images): the first argument is the model unless it is not one (no known model
    suffix, not a weights name) while being an image; then the default pretrained weights run.

    >>> split_model_and_images("cat.jpg", ["dog.png"])
    ('squeezenet1_1.onnx_zoo', ['cat.jpg', 'dog.png'])
    >>> split_model_and_images("m.sqz", ["dog.png"])
    ('m.sqz', ['dog.png'])
    """
    from pathlib import Path

    from torchvision.datasets.folder import IMG_EXTENSIONS

    from ..interop.pretrained import is_weights_name
    from ..io import LOADERS
    suffix = Path(first).suffix.lower()
    if not (is_weights_name(first) or suffix in LOADERS or suffix == ".onnx") and suffix in IMG_EXTENSIONS:
        return DEFAULT_WEIGHTS, [first, *rest]
    return first, list(rest)


def label_names(model, labels_path) -> list[str] | None:
    """A display name per output index: from --labels (matched on the model's class ids), else
    the model's class ids with their names (``n02124075 Egyptian cat``), else its ids."""
    from ..data import read_labels
    from ..errors import SqueezeNetError
    classes = getattr(model, "classes", None)
    n = getattr(model, "num_classes", None)
    if not labels_path:
        if not classes:
            return None
        names = getattr(model, "class_names", None) or classes
        return [c if nm == c else f"{c} {nm}" for c, nm in zip(classes, names)]
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


BATCH = 32   # images decoded and run at once: predict's memory is bounded by it, not by the image count


def names_for(model, path, weights) -> list[str] | None:
    """``--classes FILE``: the names of the model's class ids when the file holds them all
    (synset_words.txt for a 3-class fine-tuned model) or one name per output (the old
    ``--labels``); else the file is the model's class list in output order (for a model or
    .onnx file without one), which must have one line per output."""
    from ..data import read_class_names, read_labels
    from ..errors import SqueezeNetError
    classes = getattr(model, "classes", None)
    if path and classes:
        ids = set(read_class_names(path)[0])
        if all(c in ids for c in classes) or len(read_labels(path)) == len(classes):
            return label_names(model, path)
    if path:
        ids, names = read_class_names(path)
        n = getattr(model, "num_classes", None)
        if n is not None and len(ids) != n:
            raise SqueezeNetError(f"{path}: {len(ids)} classes, but {weights} has {n} outputs "
                                  f"(--classes lists the model's classes in output order, or names its class ids)")
        model.classes, model.class_names = ids, names
    return label_names(model, None)


def read_images(paths, transform, warn) -> tuple[list, list]:
    """(paths read, tensors) of the images that decode; each one that does not is skipped and
    reported to ``warn(path, reason)``."""
    from ..data import read_image
    from ..errors import FormatError
    good, tensors = [], []
    for path in paths:
        try:
            img = read_image(path)   # bounded; a full decode, so truncated files fail here
        except FormatError as e:
            warn(path, e.problem)
            continue
        good.append(path)
        tensors.append(transform(img))
    return good, tensors


def run(args) -> int:
    import sys

    import torch

    from ..data import check_model_input, check_preset, get_transform, preset_for
    from ..errors import FormatError, SqueezeNetError
    from ..evaluate import check_finite
    from ._infer import forward_for, load_model

    args.weights, args.images = split_model_and_images(args.weights, args.images)
    if not args.images:
        raise SqueezeNetError(f"no images given after the model {args.weights}")
    if args.top < 1:
        raise SqueezeNetError(f"--top {args.top}: must be >= 1")
    if args.preprocess:
        check_preset(args.preprocess)
    model = load_model(args.weights, preprocess=args.preprocess, force_preprocess=args.force_preprocess)
    preset = preset_for(model)
    check_model_input(model, preset, args.weights)
    names = names_for(model, args.classes, args.weights)
    tf = get_transform(preset, train=False)
    bad: list[tuple[str, str]] = []
    fwd = None
    classes = getattr(model, "classes", None)
    results = []
    for s in range(0, len(args.images), BATCH):   # streamed: memory bounded whatever the count
        paths, batch = read_images(args.images[s:s + BATCH], tf, lambda path, reason: bad.append((str(path), reason)))
        if not batch:
            continue
        if fwd is None:
            fwd = forward_for(model, args.engine, log=lambda m: print(m, file=sys.stderr, flush=True)) or model
        with torch.inference_mode():
            out = torch.as_tensor(fwd(torch.stack(batch))).float()
        if out.ndim != 2 or out.shape[0] != len(batch) or (classes and len(classes) != out.shape[1]):
            want = f"({len(batch)}, {len(classes) if classes else 'classes'})"
            raise SqueezeNetError(f"{args.weights}: the model's output has shape {tuple(out.shape)}, expected {want}")
        check_finite(out, str(args.weights))
        probs = torch.softmax(out, dim=1)
        k = min(args.top, probs.shape[1])
        for path, p in zip(paths, probs):
            top = p.topk(k)
            rows = [{"index": int(i), "probability": float(v),
                     "class": (classes[int(i)] if classes else str(int(i))),
                     "label": (names[int(i)] if names and int(i) < len(names) else str(int(i)))}
                    for v, i in zip(top.values, top.indices)]
            results.append({"image": str(path), "top": rows})
    if not results:   # nothing to predict: one line, exit 2
        if len(bad) == 1:
            raise FormatError(*bad[0])
        raise SqueezeNetError(f"none of the {len(bad)} images could be read (first: {bad[0][0]}: {bad[0][1]})")
    for path, reason in bad:
        sys.stderr.write(f"squeezenet predict: warning: skipped {path}: {reason}\n")
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(r["image"])
            for row in r["top"]:
                print(f"  {row['probability']:.4f}  {row['label']}")
    if bad:
        sys.stderr.write(f"squeezenet predict: skipped {len(bad)} of {len(args.images)} image(s) (listed above)\n")
    return 0
