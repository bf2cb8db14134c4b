"""Reading users' text files as UTF-8, with an error that names the file and line of a bad byte.

Python's own `UnicodeDecodeError` names neither, and a Latin-1 or Windows-1252
export is the most common way a labelled file goes wrong.
"""

import gzip
import io
import zlib

GZIP_MAGIC = b"\x1f\x8b"  # Never the start of UTF-8 text: 0x8b cannot follow an ASCII byte.


def read_text(path):
    """Returns the file's text; a gzip-compressed file (such as MRQA's `.jsonl.gz`) is decompressed first.

    Raises:
      ValueError naming `path`, the line and the byte offset (in the
      decompressed data) of the first byte sequence that is not UTF-8, or a
      compressed file that is damaged.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: a damaged gzip file ({e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: bytes that are not UTF-8 ({data[e.start:e.end]!r} at byte {e.start}): "
                         "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None


def open_text(path, newline=None):
    """The file's text as a file object (`newline=""` for the csv module), after `read_text`'s check."""
    return io.StringIO(read_text(path), newline=newline)
