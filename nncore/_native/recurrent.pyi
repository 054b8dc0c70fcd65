from typing import Any, Dict, Optional, Tuple

import numpy as np

CELLS: Dict[str, Tuple[int, int]]
MERGES: Dict[str, int]

class RecurrentOp:
    def __init__(self, cell: str, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray,
                 g_kernel: np.ndarray, g_recurrent: np.ndarray, g_bias: np.ndarray,
                 steps: int, return_sequences: bool, go_backwards: bool) -> None: ...
    def set_mask(self, source: Optional[Any]) -> None: ...
    def capsule(self) -> Any: ...

class BidirectionalOp:
    def __init__(self, cell: str, forward: Tuple[np.ndarray, ...],
                 backward: Tuple[np.ndarray, ...], steps: int, return_sequences: bool,
                 merge: str) -> None: ...
    def set_mask(self, source: Optional[Any]) -> None: ...
    def capsule(self) -> Any: ...
