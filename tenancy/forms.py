from django import forms


class InvitationAcceptForm(forms.Form):
    """A new local account for an invited person (their email comes from the invitation)."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @/./+/-/_ only.")
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password_again = forms.CharField(
        label="Password (again)", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data
