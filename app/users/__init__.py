"""Users: who they are (profile, role, active flag). Credentials logic lives in `app.auth`."""
