"""Identity: organizations (tenants), users, memberships and roles, sign-in, MFA, sessions."""
