require ["date", "relational", "index", "variables"];
if date :value "gt" :index 2 :zone "-0500" "received"
        "iso8601" "2007-02-26T09:00:00-05:00"
{ redirect "aftercutoff@example.org"; }
if header :index 1 :last :matches "received" "from * by *;*" {
  redirect "${1}@example.net";
}
if address :index 2 :is "to" "x@example.org" {
  redirect "second-to@example.net";
}
