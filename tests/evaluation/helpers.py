"""The keys evaluate() reports, by group."""

ATTACK_KEYS = {"mia_loss_logreg", "mia_entropy_logreg", "mia_confidence_svc"}
BASE_KEYS = {"acc_retain", "acc_forget", "acc_test", "grad_residual", "grad_norm_forget"}
REFERENCE_KEYS = {"js_divergence", "activation_distance", "param_distance"}
