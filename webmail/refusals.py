"""The routing pipeline's refusals, said in French to patients (architecture.md: the webmail
translates the rules' reasons; the rules themselves stay in routing.rules)."""

from __future__ import annotations

from routing.decisions import Refusal
from routing.rules import NO_FIRST_CONTACT, TRUST_SPACE

__all__ = ["refusal_fr"]


def refusal_fr(refusal: Refusal) -> str:
    reason = refusal.reason
    if "a patient cannot write to a patient" in reason:
        return "Vous ne pouvez pas écrire à un autre patient."
    if "closed the exchange" in reason:
        return (
            "Ce professionnel a mis fin à l'échange : vous ne pouvez plus lui répondre. "
            "Il vous réécrira si nécessaire."
        )
    if NO_FIRST_CONTACT in reason:
        return (
            "Vous ne pouvez écrire qu'à un professionnel de santé qui vous a d'abord écrit "
            "dans votre messagerie."
        )
    if TRUST_SPACE in reason:
        return "Cette adresse est en dehors de l'espace de confiance MSSanté."
    if refusal.status == "5.3.4":
        return "Le message est trop volumineux."
    if refusal.status.startswith("5.1"):
        return "Cette adresse n'existe pas ou n'accepte plus de messages."
    if not refusal.permanent:
        return "Le message n'a pas pu être envoyé pour le moment. Réessayez plus tard."
    return "Le message n'a pas pu être envoyé."
