# RFC 5228 §5.3 and §5.5
if anyof (not exists ["From","Date"],
          header :contains "from" "fool@example.com") {
   discard;
}
