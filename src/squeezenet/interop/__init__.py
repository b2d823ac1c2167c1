"""Weights from elsewhere: Caffe, the Deep-Compression file, the ONNX zoo, torchvision.

* :mod:`.caffe_pb` - the caffe.proto subset (built in code, Caffe's field numbers)
* :mod:`.caffe` - prototxt/caffemodel reading, the ``CaffeNet`` DAG module, the mapping onto
  ``SqueezeNet``, export to deploy.prototxt + caffemodel
* :mod:`.onnx_zoo` - ONNX-zoo SqueezeNet 1.1 ``.npy`` weights (bounds-checked reader)
* :mod:`.torchvision` - torchvision ``.pth`` state_dicts (``weights_only=True``)
* :mod:`.deep_compression` - the released Deep-Compression ``.net`` file
* :mod:`.importers` - ``import_model(source, paths, classes)`` behind ``squeezenet import``
"""
