from django.urls import path

from examples.django_shop import views

urlpatterns = [
    path("signup", views.signup),
    path("login", views.sign_in),
    path("orders", views.place_order),
]
