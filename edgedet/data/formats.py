"""Detection datasets in the layouts users bring — COCO, YOLO, Pascal VOC — all read as COCO. Torch-free.

The layout is detected from the folder:

- **COCO**: ``ROOT/annotations/instances_<split>.json`` and ``ROOT/<split>/`` (read as it is).
- **YOLO** (Ultralytics / Roboflow export): ``ROOT/data.yaml`` with ``names`` (a list, or an id → name map) and
  ``train`` / ``val`` image folders (a folder, a list of folders or a ``.txt`` list of images; relative to the
  yaml's ``path`` or its own folder); or a bare ``ROOT/images/{train,val}`` + ``ROOT/labels/{train,val}``, whose
  class names then come from ``ROOT/classes.txt`` (one per line). An image's label file is found by replacing
  the last ``images`` folder of its path with ``labels`` and its suffix with ``.txt``; one line per box,
  ``class cx cy w h`` normalised to 0..1. A missing label file is an image without objects.
- **Pascal VOC**: ``ROOT/Annotations/*.xml``, ``ROOT/JPEGImages/``, ``ROOT/ImageSets/Main/<split>.txt``.
  ``difficult`` boxes become crowd regions: neither targets nor false positives, as COCO treats crowds.

YOLO and VOC splits are converted once into COCO JSON in a cache (``$EDGEDET_CACHE``, else
``~/.cache/edgedet``), keyed by the names, sizes and times of the label and image files, so every reader —
training, search, evaluation, INT8 calibration, the pipeline, ``data stats`` — sees COCO, and a changed label
file means a fresh conversion.

Class names map **by name** onto COCO's 80 categories (case, ``_``/``-`` and VOC's spellings such as
``tvmonitor`` aside): a YOLO ``person`` keeps COCO's id 1 and name, so a person model trained on one set is
evaluated on another's person. Names COCO does not have keep their spelling and get ids from 1000 up.

Bad label lines (unparseable, unknown class id, a centre outside 0..1, a non-positive size) and unreadable images
are skipped and counted in one warning line naming the first file and line; a layout that cannot be read (no
``names``, a missing folder) is a ``UsageError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from edgedet.errors import UsageError
from edgedet.io import atomic_folder, atomic_write_json, link_or_copy
from edgedet.progress import progress_track, stderr

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FORMATS = ("coco", "yolo", "voc")
CONVERTER_VERSION = 1  # bump when the conversion's output changes, so caches are rebuilt

COCO_CATEGORIES = {
    "person": 1, "bicycle": 2, "car": 3, "motorcycle": 4, "airplane": 5, "bus": 6, "train": 7, "truck": 8,
    "boat": 9, "traffic light": 10, "fire hydrant": 11, "stop sign": 13, "parking meter": 14, "bench": 15,
    "bird": 16, "cat": 17, "dog": 18, "horse": 19, "sheep": 20, "cow": 21, "elephant": 22, "bear": 23, "zebra": 24,
    "giraffe": 25, "backpack": 27, "umbrella": 28, "handbag": 31, "tie": 32, "suitcase": 33, "frisbee": 34,
    "skis": 35, "snowboard": 36, "sports ball": 37, "kite": 38, "baseball bat": 39, "baseball glove": 40,
    "skateboard": 41, "surfboard": 42, "tennis racket": 43, "bottle": 44, "wine glass": 46, "cup": 47, "fork": 48,
    "knife": 49, "spoon": 50, "bowl": 51, "banana": 52, "apple": 53, "sandwich": 54, "orange": 55, "broccoli": 56,
    "carrot": 57, "hot dog": 58, "pizza": 59, "donut": 60, "cake": 61, "chair": 62, "couch": 63,
    "potted plant": 64, "bed": 65, "dining table": 67, "toilet": 70, "tv": 72, "laptop": 73, "mouse": 74,
    "remote": 75, "keyboard": 76, "cell phone": 77, "microwave": 78, "oven": 79, "toaster": 80, "sink": 81,
    "refrigerator": 82, "book": 84, "clock": 85, "vase": 86, "scissors": 87, "teddy bear": 88, "hair drier": 89,
    "toothbrush": 90,
}
COCO80_NAMES = list(COCO_CATEGORIES)  # in category-id order, as COCO-trained detectors number their classes
ALIASES = {"aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv",
           "tv monitor": "tv", "diningtable": "dining table", "pottedplant": "potted plant",
           "cellphone": "cell phone", "hair dryer": "hair drier", "doughnut": "donut"}
OTHER_IDS_FROM = 1000


def canonical_name(name: str) -> str:
    """The key names are matched by: lower case, ``_``/``-`` as spaces, VOC's spellings as COCO's."""
    key = " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())
    return ALIASES.get(key, key)


def category_for(name: str, index: int) -> dict[str, Any]:
    """A COCO category for a dataset's class: COCO's own id and name where the name matches one."""
    key = canonical_name(name)
    if key in COCO_CATEGORIES:
        return {"id": COCO_CATEGORIES[key], "name": key}
    return {"id": OTHER_IDS_FROM + index, "name": str(name)}


def detect_format(root: Path) -> str:
    """``coco``, ``yolo`` or ``voc`` from what the folder holds; a clear error when it is none of them."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--data {root}: no such folder")
    if (root / "annotations").is_dir() and any((root / "annotations").glob("instances_*.json")):
        return "coco"
    if _yaml_file(root) or ((root / "images").is_dir() and (root / "labels").is_dir()):
        return "yolo"
    if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
        return "voc"
    raise UsageError(f"{root} holds no dataset edgedet knows: expected COCO (annotations/instances_<split>.json), "
                     "YOLO (data.yaml, or images/<split> + labels/<split>) or Pascal VOC (Annotations/, "
                     "JPEGImages/, ImageSets/Main/<split>.txt)")


def cache_root() -> Path:
    return Path(os.environ.get("EDGEDET_CACHE") or Path.home() / ".cache" / "edgedet")


@dataclass
class Skipped:
    """What a conversion skipped, counted by reason, with the first place of each reason for the warning."""

    counts: Counter = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.first.setdefault(reason, where)

    def warn(self, what: str) -> None:
        if self.counts:
            parts = [f"{n} {reason} (first: {self.first[reason]})" for reason, n in self.counts.items()]
            stderr.print(f"warning: {what}: skipped " + "; ".join(parts), markup=False, highlight=False,
                         soft_wrap=True)

    def to_json(self) -> dict[str, int]:
        return dict(self.counts)


# --- YOLO ----------------------------------------------------------------------------------------------------------

def _yaml_file(root: Path) -> Path | None:
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    return None


def yolo_names(root: Path) -> list[str]:
    """The class names of a YOLO dataset in id order (data.yaml ``names``, else classes.txt)."""
    spec = _yolo_spec(root)
    return spec["names"]


def _yolo_spec(root: Path) -> dict[str, Any]:
    """``{"names": [...], "splits": {split: [image folders or list files]}}`` from data.yaml or the bare layout."""
    yaml_path = _yaml_file(root)
    if yaml_path is None:
        classes = root / "classes.txt"
        if not classes.is_file():
            raise UsageError(f"{root}: a YOLO folder without data.yaml needs classes.txt (one class name per line)")
        names = [line.strip() for line in classes.read_text().splitlines() if line.strip()]
        splits = {p.name: [p] for p in sorted((root / "images").iterdir()) if p.is_dir()}
        return {"names": names, "splits": splits}
    try:
        spec = yaml.safe_load(yaml_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{yaml_path} is not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(spec, dict) or "names" not in spec:
        raise UsageError(f"{yaml_path} has no 'names': add the class names (a list, or a map id: name)")
    names = _names_list(spec["names"], yaml_path)
    base = Path(spec.get("path") or ".")
    base = base if base.is_absolute() else yaml_path.parent / base
    splits = {}
    for split in ("train", "val", "test"):
        entries = spec.get(split)
        if entries:
            splits[split] = [p if p.is_absolute() else base / p
                             for p in map(Path, entries if isinstance(entries, list) else [entries])]
    return {"names": names, "splits": splits}


def _names_list(names: Any, where: Path) -> list[str]:
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError) as err:
            raise UsageError(f"{where}: 'names' keys must be class ids 0..K-1") from err
        if ids != list(range(len(ids))):
            raise UsageError(f"{where}: 'names' ids must run 0..{len(ids) - 1} without gaps, got {ids}")
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise UsageError(f"{where}: 'names' must be a non-empty list or a map id: name")


def _yolo_images(entries: list[Path], split: str) -> tuple[Path, list[Path]]:
    """(common image folder, sorted image files) of a YOLO split's folders or list files."""
    images: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            images += [p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        elif entry.is_file() and entry.suffix == ".txt":
            images += [(entry.parent / line.strip()) for line in entry.read_text().splitlines() if line.strip()]
        else:
            raise UsageError(f"YOLO split '{split}' points to {entry}, which does not exist: fix data.yaml")
    if not images:
        raise UsageError(f"YOLO split '{split}' ({', '.join(map(str, entries))}) holds no images")
    images = sorted({p.resolve() for p in images})
    folder = Path(os.path.commonpath([p.parent for p in images]))
    return folder, images


def label_path(image: Path) -> Path:
    """``.../images/<rest>/x.jpg`` → ``.../labels/<rest>/x.txt`` (the last ``images`` part of the path)."""
    parts = list(image.parts)
    if "images" not in parts:
        return image.with_suffix(".txt")
    at = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:at], "labels", *parts[at + 1:]).with_suffix(".txt")


def parse_yolo_labels(path: Path, width: int, height: int, num_classes: int, skipped: Skipped
                      ) -> list[tuple[int, list[float]]]:
    """(class id, COCO xywh in pixels) per valid line of a YOLO label file; bad lines are counted in ``skipped``."""
    boxes = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        if len(values) != 5 or not values[0].is_integer():
            skipped.add("lines that do not parse as 'class cx cy w h'", where)
            continue
        cls, cx, cy, w, h = int(values[0]), *values[1:]
        if not 0 <= cls < num_classes:
            skipped.add(f"lines with a class id outside 0..{num_classes - 1}", where)
        elif w <= 0 or h <= 0:
            skipped.add("boxes with a non-positive size", where)
        elif not (0 <= cx <= 1 and 0 <= cy <= 1 and w <= 1.001 and h <= 1.001):
            skipped.add("boxes with coordinates outside 0..1", where)
        else:
            x1, y1 = max(0.0, cx - w / 2) * width, max(0.0, cy - h / 2) * height
            x2, y2 = min(1.0, cx + w / 2) * width, min(1.0, cy + h / 2) * height
            boxes.append((cls, [x1, y1, x2 - x1, y2 - y1]))
    return boxes


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the file is missing or not an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _coco_skeleton(names: list[str], source: str, split: str) -> dict[str, Any]:
    categories = [category_for(name, index) for index, name in enumerate(names)]
    keys = Counter(canonical_name(c["name"]) for c in categories)
    twice = [name for name, n in keys.items() if n > 1]
    if twice:
        raise UsageError(f"{source}: class '{twice[0]}' is named twice in its class list; each class once")
    return {"info": {"edgedet_converted": {"source": source, "split": split}}, "images": [], "annotations": [],
            "categories": categories}


def _add_image(data: dict[str, Any], file_name: str, width: int, height: int) -> int:
    image_id = len(data["images"]) + 1
    data["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
    return image_id


def _add_box(data: dict[str, Any], image_id: int, category_id: int, xywh: list[float], crowd: bool = False) -> None:
    data["annotations"].append({"id": len(data["annotations"]) + 1, "image_id": image_id, "category_id": category_id,
                                "bbox": [round(v, 3) for v in xywh], "area": round(xywh[2] * xywh[3], 3),
                                "iscrowd": int(crowd)})


def yolo_to_coco(root: Path, split: str, names: list[str], folder: Path, images: list[Path]
                 ) -> tuple[dict[str, Any], Skipped]:
    data, skipped = _coco_skeleton(names, str(root), split), Skipped()
    category_ids = [c["id"] for c in data["categories"]]
    without_labels = 0
    for image in progress_track(images, f"reading YOLO labels of {split}"):
        size = _image_size(image)
        if size is None:
            skipped.add("images that cannot be read", str(image))
            continue
        image_id = _add_image(data, image.relative_to(folder).as_posix(), *size)
        labels = label_path(image)
        if not labels.is_file():
            without_labels += 1
            continue
        for cls, xywh in parse_yolo_labels(labels, *size, len(names), skipped):
            _add_box(data, image_id, category_ids[cls], xywh)
    data["info"]["edgedet_converted"]["images_without_label_file"] = without_labels
    if without_labels:
        stderr.print(f"note: {root} ({split}): {without_labels} images have no label file, read as images without "
                     "objects", markup=False, highlight=False, soft_wrap=True)
    return data, skipped


# --- VOC -----------------------------------------------------------------------------------------------------------

def _voc_ids(root: Path, split: str) -> list[str]:
    lists = root / "ImageSets" / "Main"
    path = lists / f"{split}.txt"
    if not path.is_file():
        found = ", ".join(sorted(p.stem for p in lists.glob("*.txt") if "_" not in p.stem)) or "none"
        raise UsageError(f"no {path} for split '{split}' (found: {found}); VOC lists a split's image ids there")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def voc_names(root: Path) -> list[str]:
    """Every object name in the dataset's listed annotations, sorted: one class list shared by all splits."""
    names: set[str] = set()
    ids = {i for p in (root / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem
           for i in _voc_ids(root, p.stem)}
    for image_id in sorted(ids):
        tree = _parse_xml(root / "Annotations" / f"{image_id}.xml", Skipped())
        if tree is not None:
            names |= {(o.findtext("name") or "").strip() for o in tree.iter("object")}
    names.discard("")
    if not names:
        raise UsageError(f"{root}: no object names in Annotations/*.xml")
    return sorted(names)


def _parse_xml(path: Path, skipped: Skipped) -> ET.Element | None:
    try:
        return ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        skipped.add("annotation files that cannot be read", str(path))
        return None


def voc_to_coco(root: Path, split: str, names: list[str]) -> tuple[dict[str, Any], Skipped]:
    data, skipped = _coco_skeleton(names, str(root), split), Skipped()
    category_of = {name: c["id"] for name, c in zip(names, data["categories"])}
    for image_id_text in progress_track(_voc_ids(root, split), f"reading VOC annotations of {split}"):
        tree = _parse_xml(root / "Annotations" / f"{image_id_text}.xml", skipped)
        if tree is None:
            continue
        file_name = tree.findtext("filename") or f"{image_id_text}.jpg"
        size = _image_size(root / "JPEGImages" / file_name)
        if size is None:
            skipped.add("images that cannot be read", str(root / "JPEGImages" / file_name))
            continue
        image_id = _add_image(data, file_name, *size)
        for obj in tree.iter("object"):
            box = obj.find("bndbox")
            try:
                x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                skipped.add("objects without a readable bndbox", str(root / "Annotations" / f"{image_id_text}.xml"))
                continue
            if x2 <= x1 or y2 <= y1:
                skipped.add("boxes with a non-positive size", str(root / "Annotations" / f"{image_id_text}.xml"))
                continue
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            name = (obj.findtext("name") or "").strip()
            _add_box(data, image_id, category_of[name], [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1], crowd=difficult)
    return data, skipped


# --- one entry point -----------------------------------------------------------------------------------------------

def _resolve_split(available: list[str], split: str, root: Path) -> str:
    """``val2017`` finds ``val`` and ``val`` finds ``val2017``: the COCO short-name rule, both ways."""
    if split in available:
        return split
    matches = [s for s in available if s.startswith(split) or split.startswith(s)]
    if len(matches) != 1:
        raise UsageError(f"{root}: no split '{split}' (found: {', '.join(available) or 'none'})")
    return matches[0]


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha1(str(CONVERTER_VERSION).encode())
    for path in files:
        try:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:16]


def converted_split(root: Path, split: str) -> tuple[Path, Path]:
    """``(COCO annotation file, image folder)`` of a YOLO or VOC split, converted once and cached."""
    root = Path(root).resolve()
    fmt = detect_format(root)
    if fmt == "yolo":
        spec = _yolo_spec(root)
        split = _resolve_split(list(spec["splits"]), split, root)
        folder, images = _yolo_images(spec["splits"][split], split)
        files = images + [label_path(p) for p in images] + [_yaml_file(root) or root / "classes.txt"]
    else:
        available = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem)
        split = _resolve_split(available, split, root)
        folder = root / "JPEGImages"
        ids = _voc_ids(root, split)
        files = sorted((root / "Annotations").glob("*.xml")) + [root / "ImageSets" / "Main" / f"{split}.txt"]
        files += [folder / f"{i}.jpg" for i in ids]
    target = cache_root() / "converted" / f"{root.name}-{fmt}-{_fingerprint(files)}" / f"instances_{split}.json"
    if not target.is_file():
        data, skipped = (yolo_to_coco(root, split, spec["names"], folder, images) if fmt == "yolo"
                         else voc_to_coco(root, split, voc_names(root)))
        skipped.warn(f"{root} ({split})")
        data["info"]["edgedet_converted"]["skipped"] = skipped.to_json()
        atomic_write_json(target, data)
    return target, folder


def available_splits(root: Path) -> list[str]:
    """The splits a dataset folder holds, in its own names (``train2017``, ``train``...)."""
    root = Path(root)
    fmt = detect_format(root)
    if fmt == "coco":
        return sorted(p.stem.removeprefix("instances_") for p in (root / "annotations").glob("instances_*.json"))
    if fmt == "yolo":
        return list(_yolo_spec(root)["splits"])
    return sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem)


def convert_to_coco(source: Path, out: Path) -> dict[str, int]:
    """Write every split of ``source`` (any layout) as a COCO folder: ``OUT/annotations/instances_<split>.json``
    and ``OUT/<split>/`` (images hard-linked where possible). Returns the images per split. Never half written;
    an existing ``out`` is refused."""
    from edgedet.data.annotations import find_split

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already exists and is not empty: choose another --out or delete it")
    counts = {}
    with atomic_folder(out) as tmp:
        for split in available_splits(source):
            annotations, images = find_split(Path(source), split)
            data = json.loads(annotations.read_text())
            for image in progress_track(data["images"], f"linking {split} images"):
                link_or_copy(images / image["file_name"], tmp / split / image["file_name"])
            atomic_write_json(tmp / "annotations" / f"instances_{split}.json", data)
            counts[split] = len(data["images"])
    return counts
