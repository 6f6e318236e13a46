"""Serializer fields that take JSON input only of the type the schema says.

DRF is lenient by default: a ``CharField`` reads ``0`` as ``"0"``, an ``IntegerField`` reads
``"12"`` and ``12.0`` as 12, a ``BooleanField`` reads ``"yes"`` and ``1`` as true, a choice of
``3`` matches ``"3"``. An integration that sends the wrong type has a bug it should hear about,
so these fields refuse it with 400 and the field's message. Every input serializer of the API
uses them (``StrictModelSerializer`` maps model fields to them).
"""

from __future__ import annotations

import re

from django.db import models
from rest_framework import serializers

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class CharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EmailField(serializers.EmailField, CharField):
    pass


class URLField(serializers.URLField, CharField):
    pass


class IntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class BooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class DateField(serializers.DateField):
    """``YYYY-MM-DD`` only (DRF alone also reads ``20250101``)."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(value)


class ChoiceField(serializers.ChoiceField):
    """One of the choices, of its type: ``"3"`` is not the choice ``3``, nor ``true`` ``1``."""

    def to_internal_value(self, data):
        if not any(_json_type(data) is _json_type(key) and data == key for key in self.choices):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


def _json_type(value) -> type:
    """The JSON type of a value or a choice key (a ``TextChoices`` member is a str)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    return type(value)


class PrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: CharField,
        models.TextField: CharField,
        models.EmailField: EmailField,
        models.URLField: URLField,
        models.IntegerField: IntegerField,
        models.BigIntegerField: IntegerField,
        models.SmallIntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.PositiveSmallIntegerField: IntegerField,
        models.PositiveBigIntegerField: IntegerField,
        models.BooleanField: BooleanField,
        models.DateField: DateField,
    }
    serializer_related_field = PrimaryKeyRelatedField
    serializer_choice_field = ChoiceField
