"""The API's JSON parser: DRF's, with nesting bounded.

Python's JSON decoder recurses once per nesting level: a body of a few thousand ``[`` ends in
``RecursionError`` (which DRF's parser does not expect: a 500). Bodies nested deeper than
``MAX_DEPTH`` are a 400 instead, whether the decoder gives up or a later step would.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DrfJSONParser

from paas.jsondepth import MAX_DEPTH, too_deep


class JSONParser(DrfJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.") from exc
        if too_deep(data):
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.")
        return data
