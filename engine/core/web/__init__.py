"""Web infrastructure shared by every role's pages: who is logged in, the role blueprint
factory (deny by default), CSRF on every unsafe request, and the login throttle.

Nothing here knows about users or merchants as tables: ``engine.web`` hands in a user loader,
so the kernel keeps pointing only downwards.
"""
from engine.core.web.roles import (  # noqa: F401
    ROLES, CurrentUser, current_merchant_id, current_user, init_auth, login_session, logout_session,
    role_blueprint, role_blueprints,
)
