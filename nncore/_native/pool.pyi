from typing import Any, Dict, Tuple

KINDS: Dict[str, int]

class PoolOp:
    def __init__(self, kind: str, dtype: Any, input_shape: Tuple[int, int, int],
                 output_hw: Tuple[int, int], pool_size: Tuple[int, int],
                 strides: Tuple[int, int], padding_top_left: Tuple[int, int]) -> None: ...
    def capsule(self) -> Any: ...
