"""Label Studio's API: the SDK client (``ls_client``), its token (``ls_auth``), whole-project pre-labeling."""
