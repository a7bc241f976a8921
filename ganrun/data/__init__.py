"""Training data: where it comes from and how it reaches the loop.

- `sources`: dataset sources (torchvision MNIST / Fashion-MNIST / CIFAR-10 with their downloaders and the offline
  Debian copy, image folders), the `_target_`s of conf/dataset/;
- `toy`: 2-D Gaussian mixtures (ring8, grid25) that draw fresh points and score a generator's modes;
- `decoded`: an image folder decoded once per process into one uint8 tensor (or a prepared, memory-mapped file)
  that the stream, the fingerprint and the evaluator share;
- `stream`: the dataset description (`DatasetInfo`), config fix-ups, decoding, padding, and the endless,
  resumable batch stream the loop reads.
"""

from ganrun.data.decoded import DecodedImages
from ganrun.data.stream import (
    BatchStream,
    DatasetInfo,
    PaddedSource,
    TransformedDataset,
    build_source,
    dataset_info,
    decode_all,
    fingerprint,
    image_transform,
    load_dataset,
    make_stream,
)

__all__ = ["BatchStream", "DecodedImages", "DatasetInfo", "PaddedSource", "TransformedDataset", "build_source", "dataset_info",
           "decode_all", "fingerprint", "image_transform", "load_dataset", "make_stream"]
