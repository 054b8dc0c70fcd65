from typing import Any

import numpy as np

FILL_MODES: dict

class AugmentOp:
    def __init__(self, kind: str, dtype: Any, shape: tuple, state: np.ndarray,
                 **options: Any) -> None: ...
    def capsule(self) -> Any: ...
