"""mmkd's training hooks, one per file, registered in ``mmkd.registry.HOOKS``."""
from .teacher_check_hook import TeacherCheckError, TeacherCheckHook

__all__ = ['TeacherCheckError', 'TeacherCheckHook']
