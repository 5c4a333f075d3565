require ["date", "variables", "fileinto"];
if currentdate :matches "month" "*" { set "month" "${1}"; }
if currentdate :matches "year"  "*" { set "year"  "${1}"; }
fileinto "${month}-${year}";
if currentdate :matches "std11" "*" { fileinto "${0}"; }
if currentdate :zone "-0500" :matches "iso8601" "*" { fileinto "${0}"; }
if currentdate :matches "date" "*" { set "p" "${0}"; }
if currentdate :matches "julian" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "time" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "zone" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "weekday" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "day" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "hour" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "minute" "*" { set "p" "${p} ${0}"; }
if currentdate :matches "second" "*" { set "p" "${p} ${0}"; }
fileinto "${p}";
if date :originalzone :matches "date" "julian" "*" { fileinto "julian ${0}"; }
if date :zone "+0000" :matches "date" "time" "*" { fileinto "utc ${0}"; }
if date :originalzone :matches "date" "zone" "*" { fileinto "zone ${0}"; }
if date :originalzone :matches "date" "weekday" "*" { fileinto "weekday ${0}"; }
if date :matches "date" "iso8601" "*" { fileinto "local ${0}"; }
