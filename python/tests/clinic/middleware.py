"""For audit_bench: load request.user as most views do, so that "without"
pays for the session and user lookups too."""


def load_user(get_response):
    def middleware(request):
        request.user.is_authenticated and request.user.pk
        return get_response(request)
    return middleware
