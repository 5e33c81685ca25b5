"""The test project's views."""
import json

from asgiref.sync import sync_to_async
from django.contrib.auth import authenticate, get_user_model, login, logout
from django.db import transaction
from django.http import HttpResponse, JsonResponse

from .models import Patient, Visit


def patients(request):
    """A write-heavy view: create, save, a visit in atomic(), delete."""
    p = Patient.objects.create(name=request.POST.get("name", "p"), email="e@x", ssn="123")
    p.name = p.name + "!"
    p.save()
    with transaction.atomic():
        Visit.objects.create(patient=p, reason="checkup")
    if request.POST.get("delete"):
        p.delete()
    return JsonResponse({"id": p.pk})


def self_authenticating(request):
    """Authenticates the user itself, after the middleware ran (as DRF does)."""
    Patient.objects.create(name="before-auth")
    user = get_user_model().objects.get(username=request.headers["X-User"])
    request.user = user
    Patient.objects.create(name="after-auth")
    return HttpResponse("ok")


async def async_patients(request):
    """An async view writing through sync_to_async."""
    user = await sync_to_async(lambda: request.user.pk)()
    p = await sync_to_async(Patient.objects.create)(name="async")
    return JsonResponse({"id": p.pk, "user": user})


def login_view(request):
    data = json.loads(request.body)
    user = authenticate(request, username=data["username"], password=data["password"])
    if user is None:
        return HttpResponse("no", status=401)
    login(request, user)
    return HttpResponse("ok")


def logout_view(request):
    logout(request)
    return HttpResponse("bye")


def bouncer_writes(request):
    """Several writes through pgbouncer (transaction pooling)."""
    n = int(request.GET.get("n", "3"))
    for i in range(n):
        Patient.objects.using("bouncer").create(name="%s-%d" % (request.user.username, i))
    return HttpResponse("ok")
