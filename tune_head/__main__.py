from tune_head.main import main

main()
