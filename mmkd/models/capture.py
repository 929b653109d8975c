"""Recording what a host model computes during its own training forward.

A distiller reads the student's logits (and features) from the student's
own ``loss`` call instead of running it twice. Host heads do not all go
through ``nn.Module.__call__`` (mmseg heads call ``self.forward`` directly,
mmdet's RoI head computes its box loss in ``bbox_loss``), so forward hooks
cannot see every point; :class:`CallRecorder` wraps the chosen *methods* of
the chosen objects with an instance attribute for the duration of a
``with`` block, records each call's arguments and result, and afterwards
restores exactly what was there before: an attribute the object had of its
own is put back, one it did not have is removed, also when the block raises.
"""
import functools
from typing import Any, Callable, Dict, List, NamedTuple, Tuple


class Call(NamedTuple):
    """One recorded call: its positional and keyword arguments and its result."""
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    output: Any

    def arg(self, index: int, name: str) -> Any:
        """The argument at position ``index``, or passed by keyword ``name``."""
        return self.args[index] if len(self.args) > index else self.kwargs[name]


class CallRecorder:
    """Record calls of ``points`` (name -> ``(object, method name)``)."""

    def __init__(self, points: Dict[str, Tuple[object, str]]) -> None:
        self.points = dict(points)
        self.calls: Dict[str, List[Call]] = {name: [] for name in self.points}
        self._restore: List[Callable[[], None]] = []

    def __enter__(self) -> 'CallRecorder':
        try:
            for name, (obj, method) in self.points.items():
                self._wrap(obj, method, self.calls[name])
        except BaseException:
            self._unwrap()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self._unwrap()
        return False

    def _wrap(self, obj: object, method: str, calls: List[Call]) -> None:
        own = vars(obj)
        had_own, previous = method in own, own.get(method)
        original = getattr(obj, method)

        @functools.wraps(original)
        def recording(*args, **kwargs):
            output = original(*args, **kwargs)
            calls.append(Call(args, kwargs, output))
            return output

        setattr(obj, method, recording)

        def restore() -> None:
            if had_own:
                setattr(obj, method, previous)
            elif vars(obj).get(method) is recording:
                delattr(obj, method)

        self._restore.append(restore)

    def _unwrap(self) -> None:
        while self._restore:
            self._restore.pop()()

    def first(self, name: str) -> Call:
        """The first recorded call of ``name`` (a RuntimeError if none)."""
        return self._nth(name, 0)

    def last(self, name: str) -> Call:
        """The last recorded call of ``name`` (a RuntimeError if none)."""
        return self._nth(name, -1)

    def only(self, name: str) -> Call:
        """The single recorded call of ``name`` (a RuntimeError otherwise)."""
        calls = self.calls[name]
        if len(calls) != 1:
            raise RuntimeError(f'the student\'s {name} ran {len(calls)} times in one training '
                               'forward (expected once).')
        return calls[0]

    def _nth(self, name: str, index: int) -> Call:
        calls = self.calls[name]
        if not calls:
            raise RuntimeError(f'the student\'s {name} never ran during its training forward.')
        return calls[index]
