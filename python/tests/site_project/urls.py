from django.urls import path

from clinic import views

urlpatterns = [
    path("patients/", views.patients),
    path("self-auth/", views.self_authenticating),
    path("async/", views.async_patients),
    path("login/", views.login_view),
    path("logout/", views.logout_view),
    path("bouncer/", views.bouncer_writes),
]
