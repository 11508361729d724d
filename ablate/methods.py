"""How an arm smooths its labels: the registry of smoothing methods.

An *arm* is a named bundle in the grid (a method, plus that arm's train settings); a
*method* is one of the entries here. The runner asks a method where ε goes: into the
training targets (``y·(1−ε)+ε/K``, made by the core), into the framework's loss
(``label_smoothing=ε``), both, or neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    smooth_targets: bool  # the core hands the backend y·(1−ε)+ε/K instead of one-hot targets
    smooth_loss: bool  # the framework's own smoothed cross-entropy, label_smoothing=ε
    description: str
    phrase: str  # how report prose names an arm of this method

    @property
    def uses_smoothing(self) -> bool:
        return self.smooth_targets or self.smooth_loss

    def effective_smoothing(self, eps: float) -> float:
        """The ε of one smoothing that gives the targets this method trains on.

        Smoothing twice (targets, then loss) gives y·(1−ε)²+(ε/K)(2−ε): one smoothing by
        1−(1−ε)², which is 0.19 for ε = 0.1.
        """
        if self.smooth_targets and self.smooth_loss:
            return 1.0 - (1.0 - eps) ** 2
        return eps if self.uses_smoothing else 0.0


METHODS: Registry[Method] = Registry("smoothing method")
for _m in (
    Method("none", False, False, "cross-entropy on one-hot labels", "no smoothing"),
    Method("explicit", True, False,
           "training targets replaced by a smoothed copy y·(1−ε)+ε/K before training (the Keras notebook's "
           "smooth_labels); plain cross-entropy", "explicit smoothing"),
    Method("loss", False, True,
           "hard labels; the framework's smoothed cross-entropy (Keras CategoricalCrossentropy(label_smoothing=ε), "
           "PyTorch CrossEntropyLoss(label_smoothing=ε))", "loss smoothing"),
    Method("both", True, True,
           "smoothed targets fed to the smoothed loss, as the Keras notebook's loss section actually ran: "
           "labels smoothed twice, an effective ε of 1−(1−ε)²", "smoothing twice"),
):
    METHODS.register(_m.name, _m)


def get(name: str) -> Method:
    return METHODS.get(name)
