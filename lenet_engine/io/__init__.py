"""Files the engine writes and reads back, in one place.

    safetensors_file   the strict .safetensors reader and the atomic writer
    weights_file       trained weights: format tag, checksum, metadata record; shipped names
    checkpoint_file    training checkpoints: weights, optimizer state, record, checksum
    atomic             atomic writes (a temporary file renamed into place)
    json_records       one JSON encoder for every record (numpy scalars and arrays as numbers)
    sources            how error messages name a path or bytes

Datasets (lenet_engine.datasets) and pictures (lenet_engine.images) have readers of their own.
"""
