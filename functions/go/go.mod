module lambda.local/functions

go 1.19
