"""The archiver child process (``python -m cc.archiverd``); see :mod:`cc.archiverd.app`."""
