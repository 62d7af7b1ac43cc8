"""Pre-publish admission (spec.admission.webhook): the URL policy, the signed request, the answer's
meaning (pure), and the HTTP transport that carries it."""
