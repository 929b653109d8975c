"""Count the tensor calls that force a host-device sync, on any device.

On CUDA, every call that hands a tensor's *value* (or a size that depends on
its values) to Python waits for the GPU to finish all queued work. On the CPU
nothing waits, so a test there cannot time the stall; it can count the calls
that would stall on an accelerator instead::

    from tests.sync_counter import count_syncs

    with count_syncs() as counter:
        loss = loss_fn(student_logits, teacher_logits, target)
        loss.backward()
    assert counter.calls == [], counter.calls

Each recorded call reads like ``'item at mmkd/losses/utils.py:88 (to_rows)'``:
the call's name, then the innermost frame outside torch and this module.

Counted (see :func:`sync_reason`): ``item``, ``tolist``, ``numpy``, ``cpu``
and ``.to('cpu')``; ``bool`` / ``int`` / ``float`` / ``operator.index`` and
printing of a tensor; value comparisons that return a Python bool
(``torch.equal``, ``allclose``, ``is_nonzero``); ops whose output size
depends on the values (``nonzero``, ``argwhere``, one-argument ``where``,
``unique``, ``unique_consecutive``, ``masked_select``, ``repeat_interleave``
without ``output_size``); and indexing or index assignment with a boolean
tensor (``x[mask]``, ``x[mask] = v``, ``index_put_``).

The counter enters a :class:`torch.overrides.TorchFunctionMode`, which sees
every call made through torch's Python API, including those in a custom
``autograd.Function``'s ``forward``. Backward (``backward()``,
``autograd.grad``) runs with that mode off, so a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` counts the aten ops
run there that would sync, in a custom ``backward`` as in torch's own
derivative formulas: ``_local_scalar_dense`` (behind ``item``, ``bool``,
``int``, ``float``), ``nonzero``, ``unique``, ``masked_select``, ``equal``,
boolean-mask ``index`` / ``index_put`` (e.g. the ``index_put`` behind the
gradient of ``x[mask]``). These show as ``'<name> in backward at ...'``. In
backward, ``tolist``, ``numpy`` and ``cpu`` of a CPU tensor run no aten op
and go unseen; on an accelerator they copy to the CPU and are counted.
"""
import os
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

#: Calls that always hand a value to Python.
_ALWAYS = {
    Tensor.item: 'item',
    Tensor.tolist: 'tolist',
    Tensor.numpy: 'numpy',
    Tensor.cpu: 'cpu',
    Tensor.__bool__: 'bool',
    Tensor.__int__: 'int',
    Tensor.__float__: 'float',
    Tensor.__index__: 'index',
    Tensor.__array__: 'numpy',
    Tensor.__format__: 'format',
    Tensor.__repr__: 'repr',
    Tensor.equal: 'equal',
    torch.equal: 'equal',
    Tensor.allclose: 'allclose',
    torch.allclose: 'allclose',
    Tensor.is_nonzero: 'is_nonzero',
    torch.is_nonzero: 'is_nonzero',
    Tensor.nonzero: 'nonzero',
    torch.nonzero: 'nonzero',
    Tensor.argwhere: 'argwhere',
    torch.argwhere: 'argwhere',
    Tensor.unique: 'unique',
    torch.unique: 'unique',
    Tensor.unique_consecutive: 'unique_consecutive',
    torch.unique_consecutive: 'unique_consecutive',
    Tensor.masked_select: 'masked_select',
    torch.masked_select: 'masked_select',
}
_INDEXING = {Tensor.__getitem__, Tensor.__setitem__, Tensor.index_put, Tensor.index_put_,
             torch.index_put, torch.index_put_}
_HERE = os.path.abspath(__file__)
_TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _has_bool_index(index: Any) -> bool:
    if isinstance(index, Tensor):
        return index.dtype == torch.bool
    if isinstance(index, (tuple, list)):
        return any(_has_bool_index(i) for i in index)
    return False


def _to_cpu(args: Sequence[Any], kwargs: Dict[str, Any]) -> bool:
    """Whether ``Tensor.to(*args, **kwargs)`` names the CPU as its device."""
    targets = list(args[1:]) + [kwargs.get('device')]
    return any(isinstance(t, (str, torch.device)) and torch.device(t).type == 'cpu'
               for t in targets)


def sync_reason(func: Callable, args: Sequence[Any], kwargs: Dict[str, Any]) -> Optional[str]:
    """The name of the sync ``func(*args, **kwargs)`` forces, or ``None``."""
    name = _ALWAYS.get(func)
    if name is not None:
        return name
    if func in _INDEXING:
        index = args[1] if len(args) > 1 else kwargs.get('indices')
        return f'{func.__name__} with a bool mask' if _has_bool_index(index) else None
    if func is Tensor.to:
        return "to('cpu')" if _to_cpu(args, kwargs) else None
    if func in (torch.where, Tensor.where) and len(args) + len(kwargs) == 1:
        return 'where(condition)'
    if func in (torch.repeat_interleave, Tensor.repeat_interleave):
        repeats = args[1] if len(args) > 1 else kwargs.get('repeats', args[0] if args else None)
        if isinstance(repeats, Tensor) and kwargs.get('output_size') is None and len(args) < 4:
            return 'repeat_interleave without output_size'
    return None


def _caller() -> str:
    """``file:line (function)`` of the innermost frame outside torch and here."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if path != _HERE and not path.startswith(_TORCH):
            return f'{os.path.relpath(path)}:{frame.lineno} ({frame.name})'
    return '<unknown>'


#: aten ops (overload packets) that hand a value, or a size that depends on
#: values, to the host.
_ATEN_ALWAYS = {
    '_local_scalar_dense': 'item/bool/int/float', 'nonzero': 'nonzero', 'argwhere': 'argwhere',
    '_unique': 'unique', '_unique2': 'unique', 'unique_dim': 'unique',
    'unique_consecutive': 'unique_consecutive', 'masked_select': 'masked_select',
    'equal': 'equal', 'is_nonzero': 'is_nonzero', '_to_cpu': 'cpu'
}
_ATEN_INDEXING = {'index', 'index_put', 'index_put_', '_index_put_impl', '_index_put_impl_'}


def aten_sync_reason(func, args: Sequence[Any], kwargs: Dict[str, Any]) -> Optional[str]:
    """:func:`sync_reason` for an aten op as a dispatch mode sees it."""
    name = func.overloadpacket.__name__
    if name in _ATEN_ALWAYS:
        return _ATEN_ALWAYS[name]
    if name in _ATEN_INDEXING:
        index = args[1] if len(args) > 1 else kwargs.get('indices')
        return f'{name} with a bool mask' if _has_bool_index(index) else None
    if name == 'repeat_interleave' and func.__name__.endswith('Tensor') and \
            kwargs.get('output_size') is None:
        return 'repeat_interleave without output_size'
    return None


class _AtenSyncs(TorchDispatchMode):
    """Counts aten ops the autograd engine runs (not those behind a Python
    call, which :class:`_PythonSyncs` has judged already)."""

    def __init__(self, counter: 'SyncCounter') -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.counter.in_python_call:
            reason = aten_sync_reason(func, args, kwargs)
            if reason is not None:
                self.counter.calls.append(f'{reason} in backward at {_caller()}')
        return func(*args, **kwargs)


#: Calls that run the autograd engine: the aten ops of backward are judged
#: by _AtenSyncs, the function mode being off inside a call it handles.
_ENGINE = {Tensor.backward, torch.autograd.backward, torch.autograd.grad}


class _PythonSyncs(TorchFunctionMode):
    """Counts calls through torch's Python API."""

    def __init__(self, counter: 'SyncCounter') -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = sync_reason(func, args, kwargs)
        if reason is not None:
            self.counter.calls.append(f'{reason} at {_caller()}')
        outer, self.counter.in_python_call = self.counter.in_python_call, func not in _ENGINE
        try:
            return func(*args, **kwargs)
        finally:
            self.counter.in_python_call = outer


class SyncCounter:
    """Records every sync-forcing call made while it is entered (a context
    manager; entering returns the counter itself).

    Attributes:
        calls: one ``'<name> at <file>:<line> (<function>)'`` per call, in
            order (``'<name> in backward at ...'`` for an op of torch's own
            derivative formulas).
        in_python_call: whether a call through torch's Python API is under
            way (its aten ops are not judged again).
    """

    def __init__(self) -> None:
        self.calls: List[str] = []
        self.in_python_call = False
        self._modes = (_PythonSyncs(self), _AtenSyncs(self))

    def __enter__(self) -> 'SyncCounter':
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc_info)


def count_syncs() -> SyncCounter:
    """A fresh :class:`SyncCounter`, to use as ``with count_syncs() as counter:``."""
    return SyncCounter()
