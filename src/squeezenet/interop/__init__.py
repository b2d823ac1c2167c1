"""Weights from elsewhere: Caffe, the Deep-Compression file, the ONNX zoo, torchvision."""
