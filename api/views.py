"""API ViewSets: thin interfaces. Reads are querysets with their joins applied (a list's query
count does not grow with its rows); writes call the services, whose ``ValidationError``,
``PermissionDenied`` and ``StaleFollowUpError`` the exception handler turns into 400, 403, 409."""

from __future__ import annotations

from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from audit.services import Action, audit_record, query_detail
from followups import services as followup_services
from followups.models import Change, FollowUp, FollowUpEvent
from surveys import services as survey_services
from surveys.models import Contact, Invitation, Partner, Program, Response, Wave
from webhooks import services as webhook_services
from webhooks.models import Delivery, Subscription

from . import filters, reports, serializers, tokens
from .exceptions import error_body
from .pagination import EventCursorPagination, ResponseCursorPagination
from .permissions import IsAdmin, IsAdminOrReadOnly, IsCustomerSuccess

READ_WRITE = ["get", "post", "patch", "delete", "head", "options"]
# Bodies are JSON only: form encodings cannot say null or an empty list, so a form body would
# be read differently from the JSON the schema describes. Anything else is 415.
JSON_ONLY = [JSONParser]


def _count_of(model, field: str):
    """A correlated COUNT subquery: cheaper than joining two large tables and COUNT(DISTINCT)."""
    counted = (
        model.objects.filter(**{field: OuterRef("pk")})
        .order_by()
        .values(field)
        .annotate(c=Count("pk"))
        .values("c")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


# --- Partners and contacts ------------------------------------------------------------------

PARTNER_400 = OpenApiResponse(
    description="Invalid input, a name another partner has (in any letter case), an unknown tier "
    "or partner type, or an account owner who is not on the customer-success team."
)
CONTACT_400 = OpenApiResponse(
    description="Invalid input, an unknown partner, a language that is not ISO 639-1, or an "
    "email another contact has (in any letter case)."
)
PROGRAM_400 = OpenApiResponse(
    description="Invalid input, a name another program has (in any letter case), an unknown "
    "time zone, reminder days outside the response window, or bad branding or extra questions."
)


@extend_schema_view(
    list=extend_schema(summary="List partners"),
    retrieve=extend_schema(summary="One partner"),
    create=extend_schema(
        summary="Create a partner (admins)",
        responses={201: serializers.PartnerSerializer, 400: PARTNER_400},
    ),
    partial_update=extend_schema(
        summary="Update a partner (admins)",
        responses={200: serializers.PartnerSerializer, 400: PARTNER_400},
    ),
    destroy=extend_schema(
        summary="Deactivate a partner (admins)",
        description="The partner is kept with its history and no longer surveyed.",
    ),
)
class PartnerViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = JSON_ONLY
    queryset = Partner.objects.select_related("tier", "partner_type", "account_owner")
    serializer_class = serializers.PartnerSerializer
    permission_classes = [IsAdminOrReadOnly]
    filterset_class = filters.PartnerFilter
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]
    http_method_names = READ_WRITE

    @staticmethod
    def _data(serializer) -> dict:
        data = dict(serializer.validated_data)
        if "account_owner_email" in data:
            data["account_owner"] = data.pop("account_owner_email")
        return data

    def perform_create(self, serializer):
        serializer.instance = survey_services.partner_create(**self._data(serializer))

    def perform_update(self, serializer):
        serializer.instance = survey_services.partner_update(
            partner_id=serializer.instance.pk, **self._data(serializer)
        )

    def perform_destroy(self, instance):
        survey_services.partner_deactivate(partner_id=instance.pk)


@extend_schema_view(
    list=extend_schema(summary="List contacts"),
    retrieve=extend_schema(summary="One contact"),
    create=extend_schema(
        summary="Create a contact (admins)",
        responses={201: serializers.ContactSerializer, 400: CONTACT_400},
    ),
    partial_update=extend_schema(
        summary="Update a contact (admins)",
        responses={200: serializers.ContactSerializer, 400: CONTACT_400},
    ),
    destroy=extend_schema(summary="Deactivate a contact (admins)"),
)
class ContactViewSet(PartnerViewSet):
    queryset = Contact.objects.select_related("partner")
    serializer_class = serializers.ContactSerializer
    filterset_class = filters.ContactFilter
    ordering_fields = ["name", "email", "created_at", "updated_at"]
    ordering = ["email"]

    def perform_create(self, serializer):
        serializer.instance = survey_services.contact_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = survey_services.contact_update(
            contact_id=serializer.instance.pk, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        survey_services.contact_deactivate(contact_id=instance.pk)

    @extend_schema(
        summary="Create or update contacts by email (admins)",
        description="All or nothing: any bad row refuses the whole request, and the errors name "
        "each row by its index. At most 1,000 rows. Opt-outs are never changed.",
        request=serializers.ContactBulkUpsertSerializer,
        responses={200: serializers.BulkUpsertResultSerializer},
    )
    @action(detail=False, methods=["post"], url_path="bulk-upsert")
    def bulk_upsert(self, request):
        payload = serializers.ContactBulkUpsertSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        result = survey_services.contacts_upsert(
            rows=[survey_services.ContactRow(**row) for row in payload.validated_data["contacts"]]
        )
        return ApiResponse(serializers.BulkUpsertResultSerializer(result).data)


# --- Programs, waves, invitations, responses ------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List programs"),
    retrieve=extend_schema(summary="One program"),
    create=extend_schema(
        summary="Create a program (admins)",
        responses={201: serializers.ProgramSerializer, 400: PROGRAM_400},
    ),
    partial_update=extend_schema(
        summary="Update a program (admins)",
        responses={200: serializers.ProgramSerializer, 400: PROGRAM_400},
    ),
)
class ProgramViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = JSON_ONLY
    queryset = Program.objects.prefetch_related("tiers", "partner_types")
    serializer_class = serializers.ProgramSerializer
    permission_classes = [IsAdminOrReadOnly]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer):
        serializer.instance = survey_services.program_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = survey_services.program_update(
            program_id=serializer.instance.pk, **serializer.validated_data
        )


@extend_schema_view(
    list=extend_schema(summary="List waves"), retrieve=extend_schema(summary="One wave")
)
class WaveViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Wave.objects.annotate(
        invitation_count=_count_of(Invitation, "wave"),
        response_count=_count_of(Response, "wave"),
    )
    serializer_class = serializers.WaveSerializer
    permission_classes = [IsCustomerSuccess]
    filterset_class = filters.WaveFilter
    ordering_fields = ["opens_at", "period_start"]
    ordering = ["-opens_at", "-id"]


@extend_schema_view(
    list=extend_schema(summary="List invitations", description="Tokens are never exposed."),
    retrieve=extend_schema(summary="One invitation"),
)
class InvitationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Invitation.objects.annotate(
        has_response=Exists(Response.objects.filter(invitation=OuterRef("pk")))
    )
    serializer_class = serializers.InvitationSerializer
    permission_classes = [IsCustomerSuccess]
    filterset_class = filters.InvitationFilter
    ordering_fields = ["created_at", "sent_at"]
    ordering = ["-created_at", "-id"]


@extend_schema_view(
    list=extend_schema(
        summary="List responses",
        description="Newest first, cursor-paginated: follow `next` to page on. Segment "
        "filters match the segment recorded when the partner answered.",
    ),
    retrieve=extend_schema(summary="One response"),
)
class ResponseViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Response.objects.select_related("partner", "account_owner").annotate(
        followup_id=F("followup__id")
    )
    serializer_class = serializers.ResponseSerializer
    permission_classes = [IsCustomerSuccess]
    filterset_class = filters.ResponseFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = ResponseCursorPagination

    # Reading partners' answers is recorded in the audit log (who, which filters or which one).
    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        if response.status_code == 200:
            audit_record(
                actor=request.user,
                action=Action.VIEW,
                target="api.responses",
                detail=query_detail(request),
                request=request,
            )
        return response

    def retrieve(self, request, *args, **kwargs):
        response = super().retrieve(request, *args, **kwargs)
        audit_record(
            actor=request.user,
            action=Action.VIEW,
            target="api.responses",
            target_id=kwargs.get("pk"),
            request=request,
        )
        return response


# --- Follow-ups -----------------------------------------------------------------------------

FOLLOWUP_ERRORS = {
    400: OpenApiResponse(description="Invalid input or a transition the rules refuse."),
    403: OpenApiResponse(description="Not yours to change, or a manager's decision."),
    404: OpenApiResponse(description="No such follow-up."),
    409: OpenApiResponse(description="Stale `version`: someone else changed it first."),
}


@extend_schema_view(
    list=extend_schema(summary="List follow-ups"), retrieve=extend_schema(summary="One follow-up")
)
class FollowUpViewSet(viewsets.ReadOnlyModelViewSet):
    parser_classes = JSON_ONLY
    queryset = FollowUp.objects.select_related("partner", "assignee", "response", "root_cause")
    serializer_class = serializers.FollowUpSerializer
    permission_classes = [IsCustomerSuccess]
    filterset_class = filters.FollowUpFilter
    ordering_fields = ["due_at", "created_at", "updated_at", "priority"]
    ordering = ["due_at", "id"]

    def _answer(self, followup_id: int):
        return ApiResponse(self.get_serializer(self.get_queryset().get(pk=followup_id)).data)

    def _input(self, serializer_class, request):
        payload = serializer_class(data=request.data)
        payload.is_valid(raise_exception=True)
        return payload.validated_data

    @extend_schema(
        summary="Reassign many follow-ups (managers)",
        description="Gives every listed follow-up to `assignee` (null: unassigns them), each "
        "reassignment logged on its timeline. All or nothing: an unknown follow-up refuses the "
        "whole request.",
        request=serializers.FollowUpBulkAssignSerializer,
        responses={
            200: serializers.BulkAssignResultSerializer,
            400: OpenApiResponse(
                description="Invalid input, an unknown follow-up, or an assignee who is not on "
                "the customer-success team."
            ),
            403: OpenApiResponse(description="Only a manager can reassign follow-ups."),
        },
    )
    @action(detail=False, methods=["post"], url_path="bulk-reassign")
    def bulk_reassign(self, request):
        data = self._input(serializers.FollowUpBulkAssignSerializer, request)
        changed = followup_services.followups_bulk_assign(
            followup_ids=data["followup_ids"], assignee=data["assignee"], by=request.user
        )
        return ApiResponse({"changed": changed})

    @extend_schema(
        summary="Assign or unassign",
        description="Managers give a follow-up to anyone on the team; staff may take an "
        "unassigned one for themselves.",
        request=serializers.FollowUpAssignSerializer,
        responses={200: serializers.FollowUpSerializer, **FOLLOWUP_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        followup = self.get_object()
        data = self._input(serializers.FollowUpAssignSerializer, request)
        followup_services.followup_assign(
            followup_id=followup.pk,
            assignee=data["assignee"],
            by=request.user,
            version=data.get("version"),
        )
        return self._answer(followup.pk)

    @extend_schema(
        summary="Change the status",
        description="Resolving needs `root_cause` and `action_taken`; `no_action` needs "
        "`closed_reason`; `closed` (loop closed) is reached only by telling the partner.",
        request=serializers.FollowUpTransitionSerializer,
        responses={200: serializers.FollowUpSerializer, **FOLLOWUP_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        followup = self.get_object()
        data = self._input(serializers.FollowUpTransitionSerializer, request)
        followup_services.followup_transition(
            followup_id=followup.pk,
            to=data["to"],
            by=request.user,
            note=data.get("note", ""),
            root_cause=data.get("root_cause"),
            action_taken=data.get("action_taken", ""),
            closed_reason=data.get("closed_reason", ""),
            version=data.get("version"),
        )
        return self._answer(followup.pk)

    @extend_schema(
        summary="Add a note, or log a call or an email",
        description="A call or email is the first contact if none was logged yet.",
        request=serializers.FollowUpNoteSerializer,
        responses={200: serializers.FollowUpSerializer, **FOLLOWUP_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def notes(self, request, pk=None):
        followup = self.get_object()
        data = self._input(serializers.FollowUpNoteSerializer, request)
        followup_services.followup_log_contact(
            followup_id=followup.pk,
            by=request.user,
            kind=data["kind"],
            note=data["note"],
            version=data.get("version"),
        )
        return self._answer(followup.pk)


@extend_schema_view(
    list=extend_schema(
        summary="List timeline events",
        description="Oldest first, cursor-paginated: keep the last `next` to poll for new ones.",
    ),
    retrieve=extend_schema(summary="One timeline event"),
)
class FollowUpEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = FollowUpEvent.objects.select_related("actor")
    serializer_class = serializers.FollowUpEventSerializer
    permission_classes = [IsCustomerSuccess]
    filterset_class = filters.FollowUpEventFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = EventCursorPagination


# --- Changes --------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List changes"),
    retrieve=extend_schema(summary="One change"),
    create=extend_schema(
        summary="Log a change",
        request=serializers.ChangeCreateSerializer,
        responses={
            201: serializers.ChangeSerializer,
            400: OpenApiResponse(
                description="Invalid input, an owner who is not on the customer-success team, "
                "or an unknown follow-up id (nothing is written)."
            ),
        },
    ),
    partial_update=extend_schema(
        summary="Edit a change or move its status",
        request=serializers.ChangeUpdateSerializer,
        responses={
            200: serializers.ChangeSerializer,
            400: OpenApiResponse(
                description="Invalid input, an owner who is not on the customer-success team, "
                "or moving a change back after partners were told it shipped."
            ),
        },
    ),
)
class ChangeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = JSON_ONLY
    queryset = Change.objects.select_related("owner", "created_by").prefetch_related(
        Prefetch("followups", queryset=FollowUp.objects.only("id").order_by("id"))
    )
    serializer_class = serializers.ChangeSerializer
    permission_classes = [IsCustomerSuccess]
    filterset_class = filters.ChangeFilter
    ordering_fields = ["created_at", "shipped_at", "title"]
    ordering = ["-created_at", "-id"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _answer(self, change_id: int, code=status.HTTP_200_OK):
        change = self.get_queryset().get(pk=change_id)
        return ApiResponse(serializers.ChangeSerializer(change).data, status=code)

    def create(self, request, *args, **kwargs):
        payload = serializers.ChangeCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        change = followup_services.change_create(
            title=data["title"],
            description=data["description"],
            category=data["category"],
            owner=data.get("owner"),
            followup_ids=data["followup_ids"],
            by=request.user,
        )
        return self._answer(change.pk, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        change = self.get_object()
        payload = serializers.ChangeUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        followup_services.change_update(
            change_id=change.pk, by=request.user, **payload.validated_data
        )
        return self._answer(change.pk)

    def update(self, request, *args, **kwargs):
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(
        summary="Link follow-ups",
        description="Linking a follow-up twice is a no-op; an unknown id refuses the request.",
        request=serializers.ChangeLinkSerializer,
        responses={
            200: serializers.LinkResultSerializer,
            400: OpenApiResponse(description="An unknown follow-up id: nothing is linked."),
        },
    )
    @action(detail=True, methods=["post"])
    def link(self, request, pk=None):
        change = self.get_object()
        payload = serializers.ChangeLinkSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        linked = followup_services.change_link_followups(
            change_id=change.pk,
            followup_ids=payload.validated_data["followup_ids"],
            by=request.user,
        )
        change = self.get_queryset().get(pk=change.pk)
        return ApiResponse(
            serializers.LinkResultSerializer({"linked": linked, "change": change}).data
        )

    @extend_schema(
        summary="Mark shipped",
        request=None,
        responses={
            200: serializers.ChangeSerializer,
            400: OpenApiResponse(description="Partners were already told; it stays shipped."),
        },
    )
    @action(detail=True, methods=["post"])
    def ship(self, request, pk=None):
        change = self.get_object()
        followup_services.change_ship(change_id=change.pk, by=request.user)
        return self._answer(change.pk)

    @extend_schema(
        summary="Tell the linked partners",
        description="Queues one “you told us, we did” email per linked follow-up not yet told; "
        "the change must be shipped. Asking twice queues nothing new.",
        request=None,
        responses={
            202: serializers.NotifyResultSerializer,
            400: OpenApiResponse(description="The change is not shipped yet."),
        },
    )
    @action(detail=True, methods=["post"])
    def notify(self, request, pk=None):
        change = self.get_object()
        queued = followup_services.change_notify_partners(change_id=change.pk, by=request.user)
        return ApiResponse({"queued": queued}, status=status.HTTP_202_ACCEPTED)


# --- NPS ------------------------------------------------------------------------------------


class NpsView(APIView):
    """One report, not a list of objects: an ``APIView``, so the schema says so."""

    permission_classes = [IsCustomerSuccess]

    @extend_schema(
        operation_id="nps_report",
        summary="NPS with its uncertainty, overall and per group",
        description="Counts, NPS, standard error and 95% margin of error at full precision "
        "(round for display). An empty set has null figures, never 0. `group_by=wave` lists "
        "every open or closed wave in scope, with null figures when it has no matching "
        "responses; the other groupings list the segment values that occur.",
        parameters=[serializers.NpsQuerySerializer],
        responses={200: serializers.NpsReportSerializer},
    )
    def get(self, request):
        # A plain dict, not the QueryDict: DRF would read an empty ``?group_by=`` as absent.
        query = serializers.NpsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        report = reports.nps_report(query.validated_data)
        return ApiResponse(serializers.NpsReportSerializer(report).data)


# --- Webhooks and tokens --------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List webhook subscriptions (admins)"),
    retrieve=extend_schema(summary="One webhook subscription (admins)"),
    create=extend_schema(
        summary="Subscribe a URL to events (admins)",
        description="The answer carries the signing `secret`, shown only this once.",
        responses={201: serializers.SubscriptionCreatedSerializer},
    ),
    partial_update=extend_schema(
        summary="Edit a subscription (admins)",
        description="Setting `is_active` to true re-enables a disabled one and resets its "
        "failure count.",
    ),
    destroy=extend_schema(summary="Delete a subscription and its delivery log (admins)"),
)
class SubscriptionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = JSON_ONLY
    queryset = Subscription.objects.select_related("owner")
    serializer_class = serializers.SubscriptionSerializer
    permission_classes = [IsAdmin]
    filterset_class = filters.SubscriptionFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-id"]
    http_method_names = READ_WRITE

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        sub = webhook_services.subscription_create(
            url=data["url"],
            events=data["events"],
            fmt=data.get("format", Subscription.Format.JSON),
            description=data.get("description", ""),
            by=request.user,
        )
        body = serializers.SubscriptionCreatedSerializer(sub).data
        return ApiResponse(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = webhook_services.subscription_update(
            subscription_id=serializer.instance.pk,
            url=data.get("url"),
            events=data.get("events"),
            fmt=data.get("format"),
            description=data.get("description"),
            is_active=data.get("is_active"),
        )

    @extend_schema(
        summary="Replace the signing secret (admins)",
        description="The answer carries the new secret, shown only this once; the old one stops "
        "working at once.",
        request=None,
        responses={200: serializers.SubscriptionCreatedSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        sub = webhook_services.subscription_rotate_secret(subscription_id=self.get_object().pk)
        return ApiResponse(serializers.SubscriptionCreatedSerializer(sub).data)


@extend_schema_view(
    list=extend_schema(summary="The webhook delivery log (admins)"),
    retrieve=extend_schema(summary="One delivery (admins)"),
)
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Delivery.objects.all()
    serializer_class = serializers.DeliverySerializer
    permission_classes = [IsAdmin]
    filterset_class = filters.DeliveryFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-id"]


@extend_schema_view(
    list=extend_schema(summary="Users with an API token (admins); keys are never listed"),
    create=extend_schema(
        summary="Issue a token for a user (admins)",
        description="Replaces the user's previous token. The key is shown only in this answer.",
        request=serializers.TokenCreateSerializer,
        responses={201: serializers.TokenCreatedSerializer},
    ),
    destroy=extend_schema(summary="Revoke a user's token (admins)"),
)
class TokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    parser_classes = JSON_ONLY
    queryset = Token.objects.select_related("user").order_by("user__username")
    serializer_class = serializers.TokenSerializer
    permission_classes = [IsAdmin]
    ordering_fields = ["created"]
    lookup_field = "user"
    lookup_url_kwarg = "user_id"
    lookup_value_regex = r"\d+"

    def create(self, request, *args, **kwargs):
        payload = serializers.TokenCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        token = tokens.token_issue(user=payload.validated_data["user"])
        body = serializers.TokenCreatedSerializer(token).data
        return ApiResponse(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        tokens.token_revoke(user_id=instance.user_id)


@csrf_exempt  # answers every method with 404; a CSRF 403 page would hide that
def not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in the API's error shape, not an HTML page."""
    return JsonResponse(
        error_body("not_found", _("No API endpoint at this path. Paths end with a slash.")),
        status=404,
    )
