"""API permissions mirror the staff roles of ``nps_project.roles``.

Reading needs a customer-success role (staff, manager or admin); a logged-in user without one
gets 403, an anonymous request 401. Configuration (partners, contacts, programs, webhooks) is
written by admins only. Work on follow-ups and changes is open to the customer-success team,
and the services refuse what a role may not do (another staff member's follow-up, reassigning
without being a manager) with ``PermissionDenied`` -> 403.
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions

from nps_project import roles


class IsCustomerSuccess(permissions.BasePermission):
    message = _("The API is for the customer-success team.")

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and roles.is_cs(request.user))


class IsAdminOrReadOnly(IsCustomerSuccess):
    """Customer-success staff read; admins also write."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        self.message = _("Only an admin can change this.")
        return roles.is_admin(request.user)


class IsAdmin(IsCustomerSuccess):
    message = _("Only an admin can manage webhooks.")

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and roles.is_admin(request.user))
