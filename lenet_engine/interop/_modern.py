"""A `modern` LeNet5 from weights already in the engine's layout; the last step of from_keras and from_torch."""

from lenet_engine.model import LeNet5


def modern_model(state, backend, source):
    """A LeNet5("modern") holding `state` (engine names and shapes, checked), its metadata recording `source`.

    state: {"conv1.weight": (6, 1, 5, 5), ..., "dense3.bias": (10,)} float arrays.
    source: a JSON-able dict saying where the weights came from (kept by m.save()).
    """
    model = LeNet5("modern", backend=backend)
    model.load_state_dict(state)
    model.metadata = {"arch": "modern", "imported_from": source}
    return model
