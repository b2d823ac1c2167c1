"""Datasets, preprocessing presets and loaders.

>>> from squeezenet.data import build_dataset, make_loader
>>> test = build_dataset("digits", "test")          # scikit-learn digits at 32x32, offline
>>> x, y = next(iter(make_loader(test, 4)))
>>> x.shape
torch.Size([4, 3, 32, 32])
"""
from .archive import cache_dir, unpack
from .datasets import (BUILTIN, DigitsDataset, ImageFolderDataset, Loader, Skipped, as_class_list, base_dataset,
                       class_folder_names, classes_for_scoring, dataset_label, index_classes, spread_indices,
                       spread_subset,
                       build_dataset, build_unlabeled, check_training_split, hold_out, make_loader, subset, preset_for, input_size_for, read_class_list, read_class_names, read_labels,
                       shared_dir)
from .images import read_image
from .transforms import (INPUT_SIZE, PRESETS, Preset, check_model_input, check_preset, choose_preset, digits_train_transform,
                         distill_transform, get_transform, train_crop)

__all__ = ["build_dataset", "build_unlabeled", "make_loader", "get_transform", "train_crop", "PRESETS", "INPUT_SIZE", "check_preset", "choose_preset",
           "DigitsDataset", "ImageFolderDataset", "Loader", "Skipped", "base_dataset", "read_class_list", "read_class_names",
           "read_labels", "shared_dir", "cache_dir", "unpack", "BUILTIN", "Preset", "preset_for", "input_size_for", "as_class_list",
           "digits_train_transform", "distill_transform", "read_image", "check_model_input", "class_folder_names",
           "classes_for_scoring", "check_training_split", "hold_out", "subset", "index_classes", "dataset_label", "spread_indices", "spread_subset"]
