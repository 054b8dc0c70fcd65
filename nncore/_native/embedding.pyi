from typing import Any

import numpy as np

class EmbeddingOp:
    def __init__(self, table: np.ndarray, g_table: np.ndarray, length: int) -> None: ...
    def capsule(self) -> Any: ...
