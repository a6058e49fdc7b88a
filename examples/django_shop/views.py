"""The Django shop's views (sync: they run under WSGI and, in a thread, under ASGI)."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agegate import InvalidBirthDate, InvalidSignupForm, UnderAgeError
from agegate.django import signup as screen_signup
from examples.django_shop.models import Order, OrderLine


@csrf_exempt  # an API for the tests' HTTP client; a browser form would carry a CSRF token
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    try:
        with transaction.atomic():  # an auto-increment id: the account is rolled back if refused
            user = get_user_model().objects.create_user(username=request.POST.get("username", ""))
            screen_signup(request, request.POST, subject=str(user.pk))
    except (InvalidBirthDate, InvalidSignupForm):
        return JsonResponse({"error": "invalid_signup"}, status=400)
    except UnderAgeError:
        return JsonResponse({"error": "age_restricted"}, status=403)
    login(request, user)
    return JsonResponse({"account": str(user.pk)}, status=201)


@csrf_exempt
@require_POST
def sign_in(request: HttpRequest) -> JsonResponse:
    login(request, get_object_or_404(get_user_model(), pk=request.POST["account"]))  # a demo: no password
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    user = request.user if request.user.is_authenticated else None
    order = Order.objects.create(user=user, product=request.POST.get("product", "kite"))
    OrderLine.objects.create(order=order)
    return JsonResponse({"order": order.pk}, status=201)
