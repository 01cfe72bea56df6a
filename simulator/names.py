"""Name, department and title vocabularies for the simulated tenant, and UPN folding."""

from __future__ import annotations

FIRST_NAMES = [
    "Max", "Anna", "Lena", "Jonas", "Lukas", "Sophie", "Marie", "Felix", "Paul", "Emma",
    "Jürgen", "Sören", "Zoë", "Björn", "Mia", "Leon", "Hannah", "Finn", "Lea", "Noah",
    "Clara", "Elias", "Ida", "Moritz", "Greta", "Oskar", "Frieda", "Emil", "Lina", "Theo",
    "Olivia", "James", "Priya", "Chen", "Fatima", "Mateo", "Aisha", "Lars", "Ingrid", "René",
]
LAST_NAMES = [
    "Mustermann", "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner",
    "Becker", "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
    "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann",
    "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier",
    "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters",
    "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn", "Smith", "Okafor", "Novak", "Rossi",
]
DEPARTMENTS = [
    "Engineering", "Sales", "Marketing", "Finance", "People", "Customer Success",
    "Product", "Legal", "Operations", "Design",
]
TITLES = [
    "Software Engineer", "Senior Software Engineer", "Account Executive", "Product Manager",
    "Designer", "Financial Analyst", "People Partner", "Team Lead", "Head of Operations",
    "Customer Success Manager", "Legal Counsel", "Data Analyst",
]
PERSONAL_DOMAINS = ["gmail.com", "web.de", "outlook.com"]
ORG_DOMAINS = ["contoso.com", "contoso.de"]

_FOLD = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "ë": "e", "è": "e"}


def fold(text: str) -> str:
    """Lower-case ASCII form used in user principal names (Jürgen -> juergen)."""
    return "".join(_FOLD.get(ch, ch) for ch in text.lower()).replace(" ", "")


def capitalised(local: str) -> str:
    """Max.Mustermann from max.mustermann: how hand-made target accounts were typed."""
    return ".".join(part[:1].upper() + part[1:] for part in local.split("."))
