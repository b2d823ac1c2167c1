"""Weights from elsewhere: Caffe, the Deep-Compression file, the ONNX zoo, torchvision.

* :mod:`.caffe` - a package: the caffe.proto subset (``pb``), prototxt/caffemodel reading
  (``parse``), the ``CaffeNet`` DAG module (``net``), the mapping onto ``SqueezeNet``
  (``mapping``), export to deploy.prototxt + caffemodel (``export``)
* :mod:`.onnx_zoo` - ONNX-zoo SqueezeNet 1.1 ``.npy`` weights (bounds-checked reader)
* :mod:`.torchvision` - torchvision ``.pth`` state_dicts (``weights_only=True``)
* :mod:`.deep_compression` - the released Deep-Compression ``.net`` file
* :mod:`.importers` - ``import_model(source, paths, classes)`` behind ``squeezenet import``
"""
