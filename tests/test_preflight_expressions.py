"""The attribute-mapping expression evaluator (issue 26) against the examples of Microsoft's reference,
"Reference for writing expressions for attribute mappings in Microsoft Entra ID"
(https://learn.microsoft.com/en-us/entra/identity/app-provisioning/functions-for-customizing-application-data;
MicrosoftDocs/entra-docs docs/identity/app-provisioning/functions-for-customizing-application-data.md), the
troubleshooting page's Switch example (hr-user-creation-issues.md), and the edge cases: nulls, nesting, escaped
quotes, commas inside strings, unsupported functions."""

from __future__ import annotations

import pytest

from ingest.preflight.expressions import Unknown, attributes_read, evaluate

# (expression, the user's attributes, the output the reference gives): each from the section named.
REFERENCE_EXAMPLES = [
    # Append: "Append constant suffix to user name"
    ('Append([userPrincipalName], ".test")', {"userPrincipalName": "John.Doe@contoso.com"},
     "John.Doe@contoso.com.test"),
    # Coalesce: "Flow mail value if not NULL, otherwise flow userPrincipalName"
    ("Coalesce([mail],[userPrincipalName])", {"mail": None, "userPrincipalName": "John.Doe@contoso.com"},
     "John.Doe@contoso.com"),
    # IIF: country="USA" -> country, else department
    ('IIF([country]="USA",[country],[department])', {"country": "USA", "department": "Sales"}, "USA"),
    ('IIF([country]="USA",[country],[department])', {"country": "DE", "department": "Sales"}, "Sales"),
    # IIF known limitations: AND through the true path, OR through the false path
    ('IIF([country]="USA",IIF([state]="CA","True","False"),"False")', {"country": "USA", "state": "CA"}, "True"),
    ('IIF([country]="USA",IIF([state]="CA","True","False"),"False")', {"country": "USA", "state": "NY"}, "False"),
    ('IIF([country]="USA","True",IIF([state]="CA","True","False"))', {"country": "FR", "state": "CA"}, "True"),
    # IIF's recommended workaround for empty values: Switch([country],[country],"","Other")
    ('Switch([country],[country],"","Other")', {"country": ""}, "Other"),
    ('Switch([country],[country],"","Other")', {}, "Other"),
    ('Switch([country],[country],"","Other")', {"country": "Norway"}, "Norway"),
    # Item: the first item of a multi-valued attribute
    ("Item([proxyAddresses], 1)", {"proxyAddresses": ["SMTP:a@contoso.com", "smtp:b@contoso.com"]},
     "SMTP:a@contoso.com"),
    # Left: "Joh"
    ('Left("John Doe", 3)', {}, "Joh"),
    # NormalizeDiacritics: "Zoë" -> "Zoe"
    ("NormalizeDiacritics([givenName])", {"givenName": "Zoë"}, "Zoe"),
    # Replace example 1: oldValue and replacementValue
    ('Replace([BusinessTitle],"Product Developer", , , "Software Engineer", , )',
     {"BusinessTitle": "Product Developer"}, "Software Engineer"),
    # Replace example 2: oldValue and template
    ('Replace([UserID],"<username>", , , , , "<username>@contoso.com")', {"UserID": "jsmith"}, "jsmith@contoso.com"),
    # Replace example 3: regexPattern and replacementValue with a group name
    (r'Replace([telephoneNumber], , "\\+(?<isdCode>\\d* )(?<phoneNumber>\\d{10})", , "${phoneNumber}", , )',
     {"telephoneNumber": "+91 9998887777"}, "9998887777"),
    # (the reference prints "19998887777", but its pattern removes no "+": .NET's Regex.Replace, like Python's,
    # keeps it; we follow the pattern, the page's output is a slip)
    (r'Replace([mobile], , "[()\\s-]+", , "", , )', {"mobile": "+1 (999) 888-7777"}, "+19998887777"),
    # Replace example 4: regexPattern, regexGroupName, replacementValue
    (r'Replace([AddressLineData], ,"(?<streetNumber>^\\d*)","streetNumber", "888", , )',
     {"AddressLineData": "545 Tremont Street"}, "888 Tremont Street"),
    (r'Replace([userPrincipalName], , "(?<Suffix>@(.)*)", "Suffix", "", , )',
     {"userPrincipalName": "jsmith@contoso.com"}, "jsmith"),
    # Replace example 5: replacementAttributeName when the source is empty
    (r'Replace([telephoneNumber], , "\\+(?<isdCode>\\d* )(?<phoneNumber>\\d{10})", "phoneNumber" , , [mobile], )',
     {"telephoneNumber": "", "mobile": "+91 8887779999"}, "8887779999"),
    # Replace example 6: remove what a regular expression matches
    ('Replace([mailNickname], , "[a-zA-Z_]*", , "", , )', {"mailNickname": "john_doe72"}, "72"),
    # Examples: "Strip known domain name"
    ('Replace([mail], "@contoso.com", , ,"", ,)', {"mail": "john.doe@contoso.com"}, "john.doe"),
    # Examples: "Generate user alias by concatenating parts of first and last name"
    ("Append(Mid([givenName], 1, 3), Mid([surname], 1, 5))", {"givenName": "John", "surname": "Doe"}, "JohDoe"),
    # Examples: "Add a comma between last name and first name" (Join leaves the empty source out)
    ('Join(", ", "", [surname], [givenName])', {"givenName": "John", "surname": "Doe"}, "Doe, John"),
    # Switch: the state code's time zone
    ('Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane", "SA", '
     '"Australia/Adelaide")', {"state": "QLD"}, "Australia/Brisbane"),
    # Switch note: case-insensitive through a nested ToLower
    ('Switch(ToLower([statusFlag]), "0", "true", "1", "false", "0")', {"statusFlag": "TRUE"}, "1"),
    # Switch caution: a literal empty key catches an empty source
    ('Switch([statusFlag], "Default Value", "true", "1", "", "0")', {"statusFlag": ""}, "0"),
    # ToLower: the generated UPN
    ('ToLower(Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName], [PreferredLastName]))), '
     '"contoso.com"))', {"PreferredFirstName": "John", "PreferredLastName": "Smith"}, "john.smith@contoso.com"),
    # The Graph objectMapping example's Replace ("Replace([preferredLanguage], \"-\", , , \"_\", , )")
    ('Replace([preferredLanguage], "-", , , "_", , )', {"preferredLanguage": "en-US"}, "en_US"),
    # Not, IsNull, IsNullOrEmpty, IsPresent as described
    ("Not([IsSoftDeleted])", {"IsSoftDeleted": "False"}, "True"),
    ("IsNull([displayName])", {}, True),
    ("IsNullOrEmpty([displayName])", {"displayName": ""}, True),
    ("IsPresent([displayName])", {"displayName": "Ann"}, True),
]


@pytest.mark.parametrize(("expression", "user", "expected"), REFERENCE_EXAMPLES)
def test_reference_examples(expression, user, expected):
    assert evaluate(expression, user) == expected


def test_the_default_scim_active_mapping():
    expr = 'Switch([IsSoftDeleted], , "False", "True", "True", "False")'
    assert evaluate(expr, {"IsSoftDeleted": "False"}) == "True"
    assert evaluate(expr, {"IsSoftDeleted": "True"}) == "False"
    assert evaluate(expr, {"IsSoftDeleted": "maybe"}) is None  # no default given


def test_single_app_role_assignment():
    one = [{"appRoleId": "r1", "value": "Admin"}]
    assert evaluate("SingleAppRoleAssignment([appRoleAssignments])", {}, app_role_assignments=one) == "Admin"
    assert evaluate("SingleAppRoleAssignment([appRoleAssignments])", {}, app_role_assignments=[]) is None
    two = one + [{"appRoleId": "r2", "value": "User"}]
    result = evaluate("SingleAppRoleAssignment([appRoleAssignments])", {}, app_role_assignments=two)
    assert isinstance(result, Unknown) and "several" in result.reason


def test_nulls():
    assert evaluate("[surname]", {}) is None
    assert evaluate("ToLower([surname])", {"surname": None}) is None
    assert evaluate("NormalizeDiacritics([surname])", {}) is None
    assert evaluate('Replace([surname], "a", , , "b", , )', {}) is None
    assert evaluate('Join(" ", [givenName], [surname])', {"givenName": "Ann"}) == "Ann"
    assert evaluate('Left([x], 2)', {}) == ""  # documented: a null string gives ""
    unknown = evaluate('Append([surname], "x")', {})
    assert isinstance(unknown, Unknown) and "Append" in unknown.reason
    failed = evaluate('IIF([country]="",  "Other", [country])', {"country": None})
    assert isinstance(failed, Unknown) and "country" in failed.reason  # "the condition check fails"
    assert evaluate("Coalesce([a], [b])", {}) is None


def test_nested_calls_escaped_quotes_and_commas_inside_strings():
    assert evaluate(r'Append([x], "Company name: \"Contoso\"")', {"x": "> "}) == '> Company name: "Contoso"'
    assert evaluate(r'Join(", ", "a,b", "c\\d")', {}) == r"a,b, c\d"
    assert evaluate('ToUpper(ToLower(Replace(Join("-", [a], "x,y"), "-", , , "+", , )))', {"a": "Q"}) == "Q+X,Y"
    assert evaluate('Switch([k], "d(,)", "a", "one, two")', {"k": "a"}) == "one, two"
    assert evaluate('Switch([k], "d(,)", "a", "one, two")', {"k": "z"}) == "d(,)"


def test_unknown_functions_and_bad_syntax():
    unknown = evaluate("AppRoleAssignmentsComplex([appRoleAssignments])", {})
    assert isinstance(unknown, Unknown) and "AppRoleAssignmentsComplex" in unknown.reason
    nested = evaluate('ToLower(FormatDateTime([d], , "yyyyMMdd", "yyyy-MM-dd"))', {"d": "20200101"})
    assert isinstance(nested, Unknown) and "FormatDateTime" in nested.reason  # an Unknown argument propagates
    assert isinstance(evaluate("Trim([x])", {"x": " a "}), Unknown)  # Entra Connect's, not provisioning's
    for bad in ("ToLower([x]", 'Append([x], "open)', "[x", "", "ToLower([x]) extra"):
        result = evaluate(bad, {"x": "a"})
        assert isinstance(result, Unknown) and "parse" in result.reason, bad
    assert not Unknown("x")  # never a true condition


def test_attributes_read():
    assert attributes_read('IIF([country]="USA",Join(" ", [a], [b]),[department])') == {
        "country", "a", "b", "department"}
    assert attributes_read("ToLower([x]") == set()
