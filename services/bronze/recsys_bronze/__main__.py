from recsys_bronze.main import main

main()
