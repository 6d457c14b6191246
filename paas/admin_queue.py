"""The worker queues (django-q2) in the studio: visible to operators, changed only through services.

django-q2's own admin pages let a superuser add, edit and delete schedules, queued tasks and task
records with no audit event. A schedule's ``func`` is a dotted path the workers execute, so editing
one in a web form is running code by form; schedules are defined in migrations instead (see
paas/migrations). Here every page is read-only, and resubmitting a finished task is the one write,
through ``paas.services.task_resubmit`` (operators only, audited).
"""

from django.contrib import admin, messages
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from paas import authz
from paas.errors import ApplicationError


class ReadOnlyQueueAdmin:
    list_per_page = 50  # as the studio's own pages (paas/admin.py)
    show_full_result_count = False

    def has_module_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.action(description="Resubmit the selected tasks to their queue")
def resubmit(model_admin, request, queryset):
    from paas.services import task_resubmit

    for task in queryset:
        try:
            task_resubmit(actor=request.user, task=task)
        except ApplicationError as exc:
            model_admin.message_user(request, f"{task.name}: {exc.message}", messages.ERROR)
    model_admin.message_user(request, "Resubmitted.", messages.SUCCESS)


class ScheduleAdmin(ReadOnlyQueueAdmin, q_admin.ScheduleAdmin):
    pass


class SuccessAdmin(ReadOnlyQueueAdmin, q_admin.TaskAdmin):
    actions = [resubmit]


class FailureAdmin(ReadOnlyQueueAdmin, q_admin.FailAdmin):
    actions = [resubmit]


class QueueAdmin(ReadOnlyQueueAdmin, q_admin.QueueAdmin):
    pass


def register(site) -> None:
    for model, model_admin in (
        (Schedule, ScheduleAdmin),
        (Success, SuccessAdmin),
        (Failure, FailureAdmin),
        (OrmQ, QueueAdmin),
    ):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
