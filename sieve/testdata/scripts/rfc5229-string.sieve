require ["variables", "encoded-character", "fileinto", "relational"];
set "state" "${state} pending";
if string :matches " ${state} " "* pending *" {
    # the above test always succeeds
    fileinto "pending";
}
set "name" "Ethelbert";
if header :contains "Subject" "dear${hex:20 24 7b 4e}ame}" {
    # the test string is "dear Ethelbert"
    fileinto "ethelbert";
}
if string :count "eq" ["", "a", "", "b"] "2" {
    fileinto "two non-empty";
}
if string :is "" "" {
    fileinto "empty";
}
