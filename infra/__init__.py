"""Storage and configuration edges: the journal, the archive, the record codec, settings, logging.

This layer sits between the pure domain (``domain``) and the actor shells (``actors``): it may
import ``domain`` and the standard library, never ``actors`` or ``runtime``.
"""
