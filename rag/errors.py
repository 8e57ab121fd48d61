"""The error family. Front ends turn these into one-line messages (exit code 2 in the CLI)."""


class RagError(Exception):
    """Base class: a problem the user can fix, reported in one line."""


class BadInput(RagError):
    """A question, path or option that cannot be used."""


class UnreadableDocument(RagError):
    """A file that cannot be turned into text."""


class IndexMissing(RagError):
    """No index has been built at the index directory."""


class IndexMismatch(RagError):
    """The index was built with other settings, or its files disagree."""


class IndexBusy(RagError):
    """Another process holds the index's write lock."""


class ModelMissing(RagError):
    """The embedding or generation model cannot be found."""


class IndexUnwritable(RagError):
    """The index directory cannot be created or written (permissions, a full disk)."""


class GenerationFailed(RagError):
    """The generation server cannot be reached, is too slow, or answers with something unusable."""


class IndexUnavailable(RagError):
    """The database server holding the index cannot be reached, or was lost mid-operation."""


class HistoryUnavailable(RagError):
    """The saved conversations cannot be read or written (a damaged file, permissions, a full disk)."""
