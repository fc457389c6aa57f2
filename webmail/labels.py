"""French words for what the store records: document types, audit actions, proofs of identity."""

from __future__ import annotations

from typing import Final

__all__ = ["action_label", "document_type_label", "method_label"]

# mssante.md §6: the LOINC typeCodes seen most in MSSanté exchanges.
DOCUMENT_TYPES: Final = {
    "11502-2": "Compte rendu d'examens de biologie",
    "34112-3": "Compte rendu d'hospitalisation",
    "18748-4": "Compte rendu d'imagerie",
    "57833-6": "Prescription",
}

ACTIONS: Final = {
    "message.deliver": "Message déposé dans votre messagerie",
    "message.read": "Lecture d'un message",
    "message.download": "Téléchargement d'une pièce jointe",
    "message.file": "Pièce jointe enregistrée dans le dossier",
    "message.reply": "Réponse à un message",
    "message.sent": "Envoi d'un message",
    "message.refused": "Accès refusé à un message",
    "message.mdn": "Accusé de lecture envoyé",
    "message.mdn.refused": "Accusé de lecture non envoyé",
    "document.file": "Document classé dans votre dossier",
    "document.read": "Consultation d'un document",
    "document.download": "Téléchargement d'un document",
    "document.refused": "Accès refusé à un document",
    "document.hide": "Document masqué aux professionnels",
    "document.show": "Document de nouveau visible par les professionnels",
    "webmail.login": "Connexion à la messagerie",
    "webmail.logout": "Déconnexion",
    "webmail.login.code-refused": "Code de connexion erroné",
    "account.password": "Mot de passe changé",
    "account.totp.enrol": "Application d'authentification activée",
    "account.totp.remove": "Application d'authentification retirée",
    "account.opposed": "Opposition à la messagerie",
    "account.closed": "Fermeture de la messagerie",
}

METHODS: Final = {
    "certificate": "certificat (carte CPS ou certificat d'établissement)",
    "oauth": "Pro Santé Connect",
    "password": "mot de passe",
    "app-password": "mot de passe d'application",
    "peer-tls": "opérateur MSSanté (certificat serveur)",
    "webmail:password+email-code": "mot de passe et code reçu par e-mail",
    "webmail:password+totp": "mot de passe et application d'authentification",
}


def document_type_label(code: str, display: str) -> str:
    return display or DOCUMENT_TYPES.get(code, "") or "Document"


def action_label(action: str) -> str:
    if action in ACTIONS:
        return ACTIONS[action]
    if action.startswith(("imap.", "mailbox.")):
        return "Accès à votre messagerie depuis un logiciel de messagerie"
    return action


def method_label(method: str) -> str:
    return METHODS.get(method, method or "—")
