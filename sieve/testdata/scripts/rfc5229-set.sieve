require ["variables", "fileinto"];

set "dollar" "$";
set "text" "regarding ${dollar}{beep}";
fileinto "${text}";

set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
if string :is "${vacation}" text:
Dear Mr Coyote,
I'm out, please leave a message after the meep.
.
{
  fileinto "vacation-ok";
}

# The value assigned to the variable is printed after the arrow
set "a" "juMBlEd lETteRS";             # => "juMBlEd lETteRS"
set :length "b" "${a}";                # => "15"
fileinto "${b}";
set :lower "b" "${a}";                 # => "jumbled letters"
fileinto "${b}";
set :upperfirst "b" "${a}";            # => "JuMBlEd lETteRS"
fileinto "${b}";
set :upperfirst :lower "b" "${a}";     # => "Jumbled letters"
fileinto "${b}";
set :quotewildcard "b" "Rock*";        # => "Rock\*"
fileinto "${b}";
set :upper :lowerfirst "b" "${a}";
fileinto "${b}";
set "c" "${BAD${a}";
fileinto "${c}";
fileinto "${President, ${a} Inc.}";
fileinto "${unset}${a}${}";
