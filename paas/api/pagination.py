import re

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

from paas.errors import ValidationFailed

ASCII_NUMBER = re.compile(r"[0-9]{1,19}")  # int() also takes "٣" or fullwidth digits: not here


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 500 a page). A page size that is not a whole number from 1 up
    is a 400 naming ``page_size`` (DRF would silently use the default); a page that is not a page
    number, or past the last page, is a 404 "Invalid page."."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and raw != "" and (not ASCII_NUMBER.fullmatch(raw) or int(raw) < 1):
            raise ValidationFailed(
                "page_size is a whole number from 1 (at most 500 are returned).",
                fields={"page_size": f"A whole number from 1 to {self.max_page_size}."},
            )
        return super().get_page_size(request)

    def get_page_number(self, request, paginator):
        number = super().get_page_number(request, paginator)
        if number not in self.last_page_strings and not ASCII_NUMBER.fullmatch(str(number)):
            raise NotFound("Invalid page.")
        return number
