from django.db import migrations, models


def idp_users_unverified(apps, schema_editor):
    """Single sign-on users' addresses are verified again at their next sign-on (the claim decides)."""
    apps.get_model("tenancy", "User").objects.filter(source="idp").update(email_verified=False)


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0003_sso"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified",
            field=models.BooleanField(
                default=True,
                help_text="Whether the address is proven to be this person's: local accounts proved it (invitation link, or an operator made them); single sign-on users as their provider's email_verified claim says at each sign-on (no claim: not verified). Invitations and collaborator grants match on verified addresses only.",
                verbose_name="email verified",
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="sso_email_domains",
            field=models.CharField(
                blank=True,
                help_text="Set by operators; comma-separated (acme.com, research.acme.com); each domain belongs to one organization at most. A person signing on with a verified address in one of these domains gets roles from this organization's IdP group mappings only, and this organization's mappings apply only to such people: no other organization's mapping can pull them in.",
                max_length=1000,
                verbose_name="single sign-on email domains",
            ),
        ),
        migrations.RunPython(idp_users_unverified, migrations.RunPython.noop),
    ]
